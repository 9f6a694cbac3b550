"""Domain exceptions. The api maps them to HTTP responses in one place."""

from __future__ import annotations


class TandemError(Exception):
    """Base class: `code` is the machine-readable error code, `status` the HTTP status."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(TandemError):
    code = "invalid_request"
    status = 422


class MalformedRequest(TandemError):
    code = "malformed_json"
    status = 400


class PayloadTooLarge(TandemError):
    code = "payload_too_large"
    status = 413


class NotFound(TandemError):
    code = "not_found"
    status = 404


class JobNotFound(NotFound):
    pass


class JobNotFinished(TandemError):
    """The job's results are asked for before the job ended."""

    code = "job_not_finished"
    status = 409


class InvalidTransition(TandemError):
    """A job status change that the state machine of jobs does not allow."""

    code = "invalid_transition"
    status = 409


class WebhookRefused(InvalidRequest):
    code = "webhook_refused"


class EndpointUnavailable(TandemError):
    code = "endpoint_unavailable"
    status = 503


class EndpointError(TandemError):
    code = "endpoint_error"
    status = 502
