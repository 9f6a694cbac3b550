"""Asynchronous inference (EndpointMode=async): a batch waits in the endpoint's queue while its
Map task waits on a task token, without polling (docs/ARCHITECTURE.md, "The workflow").

- `submit_batch` (the submit function, called by `lambda:invoke.waitForTaskToken`): the
  claim-check body goes to S3 as the InputLocation, the try is recorded under its deterministic
  InferenceId with the task token, then `InvokeEndpointAsync` queues it.
- `complete` (the complete function, fed by SageMaker's SNS success and error topics): the
  notification resumes the task, `SendTaskSuccess`, or `SendTaskFailure` with an error named by
  class (a container 5xx or 429 `Tandem.ModelServerError`, a 4xx `Tandem.ModelClientError`,
  anything else `Tandem.InferenceFailed`); the state machine retries all but the 4xx.
- `sweep` (the complete function on its schedule) is the heartbeat: for each try still pending
  it looks where SageMaker writes results. A result older than the notification grace (60 s: its
  notification was lost) resumes the task; a try with no result yet gets `SendTaskHeartbeat`; a
  try past its deadline (queue TTL + invocation timeout + grace) with no result is failed as
  `Tandem.InferenceLost`. If the sweep itself stops, the task's `HeartbeatSeconds` fails the try,
  and `TimeoutSeconds` caps it.

A try is closed once (a conditional write), and Step Functions closes a token once, so a
duplicate notification, or a notification racing the sweep, does nothing twice.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from tandem_common.adapters.async_endpoint import AsyncInvocation, invoke_async
from tandem_common.adapters.inferences import InferenceStore
from tandem_common.adapters.jobs import utc_now
from tandem_common.adapters.storage import Storage
from tandem_common.adapters.workflows import TaskCallbacks
from tandem_common.contracts import (
    ASYNC_CLIENT_ERROR,
    ASYNC_INFERENCE_FAILED,
    ASYNC_INFERENCE_LOST,
    ASYNC_SERVER_ERROR,
    JobPaths,
    inference_id,
)
from tandem_common.models import (
    AsyncNotification,
    CompleteReport,
    InferenceRecord,
    InferenceState,
    SubmitInput,
    SubmitResult,
    ValidationError,
)
from tandem_common.observability import logger
from tandem_common.settings import Settings

RECORD_TTL_S = 86400  # a closed try's record is kept a day past its deadline, then expires
EXCERPT_BYTES = 1024  # of a failed inference's response body, in the failure's cause
# SageMaker's failureReason for a container error, e.g. "ClientError: Received server error
# (500) from model. See the SageMaker Endpoint logs in your account for more information."
_CONTAINER_ERROR = re.compile(r"Received (?:server|client) error \((\d{3})\)")

Invoke = Callable[[str, str, str, int, int], AsyncInvocation]


def submit_batch(
    request: SubmitInput,
    settings: Settings,
    storage: Storage,
    inferences: InferenceStore,
    invoke: Invoke = invoke_async,
    clock: Callable[[], float] = time.time,
) -> SubmitResult:
    """Queue one try of one batch on the async endpoint, its task token kept by InferenceId."""
    paths = JobPaths(settings.resources.data_bucket, request.job_id)
    input_location = paths.uri(paths.batch_request(request.index))
    storage.put_json(input_location, request.request.model_dump())
    iid = inference_id(request.job_id, request.index, request.retry)
    limits = settings.async_inference
    now = clock()
    deadline = int(now) + limits.deadline_s
    inferences.record(
        InferenceRecord(
            inference_id=iid,
            task_token=request.task_token,
            job_id=request.job_id,
            index=request.index,
            submitted_at=utc_now(),
            deadline=deadline,
            expires_at=deadline + RECORD_TTL_S,
        )
    )
    try:
        invocation = invoke(
            settings.resources.endpoint_name,
            input_location,
            iid,
            limits.async_request_ttl_s,
            limits.async_invocation_timeout_s,
        )
    except Exception:
        # The task fails with this error (and is retried as a new try): nothing to sweep.
        inferences.close(iid, "abandoned")
        raise
    inferences.set_locations(iid, invocation.output_location, invocation.failure_location)
    return SubmitResult(
        inference_id=iid,
        input_location=input_location,
        output_location=invocation.output_location,
        failure_location=invocation.failure_location,
    )


def parse_notification(message: str) -> AsyncNotification | None:
    """An SNS message as SageMaker's notification, or None for anything else on the topic."""
    try:
        return AsyncNotification.model_validate_json(message)
    except ValidationError:
        return None


def failure_error(reason: str) -> str:
    """The error name a failed inference's task fails with, by class (see the module doc)."""
    match = _CONTAINER_ERROR.search(reason)
    if match is None:
        return ASYNC_INFERENCE_FAILED
    status = int(match.group(1))
    return ASYNC_CLIENT_ERROR if 400 <= status < 500 and status != 429 else ASYNC_SERVER_ERROR


def complete(
    notifications: Iterable[AsyncNotification | None],
    inferences: InferenceStore,
    callbacks: TaskCallbacks,
    storage: Storage,
) -> CompleteReport:
    """Resume the task of each notified try (once: a closed try is a duplicate)."""
    report = CompleteReport()
    for note in notifications:
        record = None if note is None else inferences.get(note.inference_id)
        if note is None or record is None:
            report.unknown += 1
            logger.info(
                "notification ignored: not an inference of this stack",
                extra={"inference_id": note.inference_id if note else None},
            )
        elif record.state != "pending":
            _closed_already(record, report)
        elif note.succeeded:
            output = note.output_location or record.output_location
            _succeed(record, output, "notification", inferences, callbacks, report)
        else:
            reason = note.failure_reason or f"invocationStatus {note.invocation_status}"
            location = note.failure_location or record.failure_location
            cause = reason + _excerpt(storage, location)
            _fail(record, inferences, callbacks, report, failure_error(reason), cause)
    return report


def sweep(
    inferences: InferenceStore,
    callbacks: TaskCallbacks,
    storage: Storage,
    notification_grace_s: float = 60.0,
    clock: Callable[[], float] = time.time,
    time_left_ms: Callable[[], int] | None = None,
) -> CompleteReport:
    """The heartbeat of every pending try: resume it from S3, heartbeat it, or fail it as lost."""
    report = CompleteReport()
    for record in inferences.pending():
        if time_left_ms is not None and time_left_ms() < 5000:
            break  # the next run (a minute later) goes on
        report.checked += 1
        now = clock()
        output = _settled(storage, record.output_location, now, notification_grace_s)
        failure = _settled(storage, record.failure_location, now, notification_grace_s)
        if output:
            _succeed(record, output, "sweep", inferences, callbacks, report)
        elif failure:
            cause = "the inference failed (its notification was lost)" + _excerpt(storage, failure)
            _fail(record, inferences, callbacks, report, ASYNC_INFERENCE_FAILED, cause)
        elif now > record.deadline:
            cause = (
                f"no result and no notification for inference {record.inference_id} by its "
                "deadline (queue TTL + invocation timeout + grace)"
            )
            before = report.failed
            _fail(record, inferences, callbacks, report, ASYNC_INFERENCE_LOST, cause)
            report.lost += report.failed - before
        elif callbacks.heartbeat(record.task_token):
            report.heartbeats += 1
        else:  # its task is closed (timed out): nothing waits on it any more
            inferences.close(record.inference_id, "abandoned")
            report.duplicate += 1
    return report


def _succeed(
    record: InferenceRecord,
    output_location: str | None,
    found_by: str,
    inferences: InferenceStore,
    callbacks: TaskCallbacks,
    report: CompleteReport,
) -> None:
    output = {"inference_id": record.inference_id, "output_location": output_location}
    if callbacks.succeed(record.task_token, {**output, "found_by": found_by}):
        inferences.close(record.inference_id, "succeeded", over=_ACCEPTED_OVER)
        report.succeeded += 1
    else:
        _closed_elsewhere(record, inferences, report)


def _fail(
    record: InferenceRecord,
    inferences: InferenceStore,
    callbacks: TaskCallbacks,
    report: CompleteReport,
    error: str,
    cause: str,
) -> None:
    if callbacks.fail(record.task_token, error, cause):
        inferences.close(record.inference_id, "failed", over=_ACCEPTED_OVER)
        report.failed += 1
        logger.info(
            "inference failed",
            extra={"inference_id": record.inference_id, "job_id": record.job_id, "error": error},
        )
    else:
        _closed_elsewhere(record, inferences, report)


# A try whose callback Step Functions accepted is closed as such even over "abandoned": a copy of
# its notification, handled at the same moment, may have had its own callback refused (the token
# took this one first) and marked the try abandoned just before.
_ACCEPTED_OVER: tuple[InferenceState, ...] = ("pending", "abandoned")


def _closed_elsewhere(
    record: InferenceRecord, inferences: InferenceStore, report: CompleteReport
) -> None:
    """The task's token is closed already (a duplicate, the sweep first, a timed-out try)."""
    inferences.close(record.inference_id, "abandoned")
    _closed_already(record, report)


def _closed_already(record: InferenceRecord, report: CompleteReport) -> None:
    report.duplicate += 1
    logger.info(
        "try closed already: nothing done",
        extra={"inference_id": record.inference_id, "job_id": record.job_id},
    )


def _settled(storage: Storage, location: str | None, now: float, grace_s: float) -> str | None:
    """`location` if an object is there and older than `grace_s` (its notification is late)."""
    if not location:
        return None
    written = storage.modified_at(location)
    return location if written is not None and now - written >= grace_s else None


def _excerpt(storage: Storage, location: str | None) -> str:
    """`: <the start of the failed inference's response body>`, or "" when there is none."""
    if not location:
        return ""
    try:
        body = storage.get_bytes_if_exists(location)
    except Exception:  # noqa: BLE001 - no permission, a foreign bucket: the reason alone will do
        return ""
    if not body:
        return ""
    return ": " + body[:EXCERPT_BYTES].decode("utf-8", errors="replace")
