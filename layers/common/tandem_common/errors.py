"""Domain exceptions. The api maps them to HTTP responses in one place."""

from __future__ import annotations


class TandemError(Exception):
    """Base class: `code` is the machine-readable error code, `status` the HTTP status, `param`
    the request field at fault where there is one (the OpenAI-compatible routes report it)."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(TandemError):
    code = "invalid_request"
    status = 422


class BadRequest(TandemError):
    """A request field the OpenAI-compatible routes refuse: 400, as OpenAI answers."""

    code = "invalid_request"
    status = 400


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


class ModelNotFound(NotFound):
    code = "model_not_found"


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


class IndexingDisabled(TandemError):
    """The stack was deployed with `VectorIndexing=false`: there is no vector index."""

    code = "indexing_disabled"
    status = 501


class VectorIndexError(TandemError):
    """Amazon S3 Vectors (or the documents table beside it) refused or failed a call."""

    code = "vector_index_error"
    status = 502


class VectorIndexBusy(VectorIndexError):
    """The vector index kept throttling after the SDK's retries."""

    code = "vector_index_busy"
    status = 503


class EndpointThrottled(EndpointUnavailable):
    """The endpoint (or SageMaker in front of it) refused the call for now: retried."""

    code = "endpoint_throttled"


class EndpointRejected(TandemError):
    """The endpoint refused the request itself (a 4xx: no such endpoint, not an async endpoint,
    a bad input location): not retried, the batch fails with this reason."""

    code = "endpoint_rejected"
    status = 502
