"""Logs, metrics and traces, the same way in every function.

- `logger`: the Powertools Logger. Every log line of a job carries its `job_id`: a handler or a
  use-case entry says once which job it works on (`bind_job`, or `job_context` around each record
  of a batch); `inject_lambda_context(clear_state=True)` on every handler clears it at the start
  of the next invocation, so nothing passes `job_id` in `extra=` by hand. Logs never carry
  document text or vectors: ids and counts only.
- `emit(METRIC, value, **dimensions)`: one CloudWatch metric as an EMF line on stdout (Powertools
  `single_metric`: each metric its own dimensions), namespace POWERTOOLS_METRICS_NAMESPACE, plus
  Powertools' `service` dimension (POWERTOOLS_SERVICE_NAME). `METRICS` lists every metric Tandem
  emits and every value its dimensions can take (all few: nothing per job or per document); the
  template's dashboard and alarms use exactly these (tests/unit/test_observability.py).
- `traced`: the X-Ray Tracer (its SDK import is about 300 ms), built on the first invocation and
  only inside a real Lambda.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from tandem_common.contracts import ENTRY_PATHS, FAILURE_CLASS_NAMES, WORKFLOWS

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

# The service name comes from POWERTOOLS_SERVICE_NAME.
logger = Logger()

__all__ = ["METRICS", "bind_job", "emit", "job_context", "logger", "traced", "tracer"]

Handler = TypeVar("Handler", bound=Callable[..., Any])


# ---------------------------------------------------------------------- job correlation
def bind_job(job_id: str) -> None:
    """Every log line from here to the end of the invocation carries `job_id`."""
    logger.append_keys(job_id=job_id)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """`job_id` on the log lines inside the block only (one record of a batch, one stuck job)."""
    logger.append_keys(job_id=job_id)
    try:
        yield
    finally:
        logger.remove_keys(["job_id"])


# ---------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class Metric:
    """One metric: its name, unit, and each dimension with the values it can take."""

    name: str
    unit: str
    dimensions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""


WEBHOOK_OUTCOMES = ("delivered", "retrying", "failed", "stopped")

JOBS_STARTED = Metric(
    "JobsStarted",
    "Count",
    {"EntryPath": ENTRY_PATHS, "Workflow": WORKFLOWS},
    "a job record created (once per job), by entry path and the workflow that runs it",
)
JOBS_SUCCEEDED = Metric("JobsSucceeded", "Count", {}, "a job ended SUCCEEDED")
JOBS_PARTIAL = Metric("JobsPartial", "Count", {}, "a job ended PARTIAL")
JOBS_FAILED = Metric("JobsFailed", "Count", {}, "a job ended FAILED (deliver, fail or watchdog)")
DOCUMENTS_FAILED = Metric(
    "DocumentsFailed",
    "Count",
    {"Reason": FAILURE_CLASS_NAMES},
    "documents of a finished job that failed, by class of reason (contracts.failure_class)",
)
CHUNKS_EMBEDDED = Metric("ChunksEmbedded", "Count", {}, "chunks in a finished job's result")
BATCH_LATENCY = Metric(
    "BatchLatency",
    "Milliseconds",
    {},
    "a batch's endpoint call (from its InvokeEndpoint state's start, retries included) to its "
    "shard written",
)
ENDPOINT_RETRIES = Metric(
    "EndpointRetries", "Count", {}, "container 5xx retries of a batch (the Map child's attempts)"
)
ENDPOINT_THROTTLES = Metric(
    "EndpointThrottles", "Count", {}, "batches failed by endpoint throttling after every retry"
)
WEBHOOK_ATTEMPTS = Metric(
    "WebhookAttempts", "Count", {"Outcome": WEBHOOK_OUTCOMES}, "webhook attempts, by outcome"
)
STUCK_JOBS = Metric("StuckJobs", "Count", {}, "jobs the watchdog found stuck and failed")

METRICS: tuple[Metric, ...] = (
    JOBS_STARTED,
    JOBS_SUCCEEDED,
    JOBS_PARTIAL,
    JOBS_FAILED,
    DOCUMENTS_FAILED,
    CHUNKS_EMBEDDED,
    BATCH_LATENCY,
    ENDPOINT_RETRIES,
    ENDPOINT_THROTTLES,
    WEBHOOK_ATTEMPTS,
    STUCK_JOBS,
)
JOB_END_METRICS = {"SUCCEEDED": JOBS_SUCCEEDED, "PARTIAL": JOBS_PARTIAL, "FAILED": JOBS_FAILED}


def emit(metric: Metric, value: float = 1, **dimensions: str) -> None:
    """Write one metric (an EMF line on stdout). The dimensions must be the metric's own, with
    values it declares: a typo would make a metric the dashboard never shows."""
    if set(dimensions) != set(metric.dimensions):
        raise ValueError(f"{metric.name} takes dimensions {sorted(metric.dimensions)}")
    for name, dim_value in dimensions.items():
        if dim_value not in metric.dimensions[name]:
            raise ValueError(f"{metric.name}: {name}={dim_value!r} is not one of its values")
    with single_metric(
        name=metric.name,
        unit=MetricUnit(metric.unit),
        value=value,
        default_dimensions=dimensions,
    ):
        pass


# ---------------------------------------------------------------------- tracing
@lru_cache(maxsize=1)
def tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    return Tracer(service="tandem")


def tracing_enabled() -> bool:
    """Powertools' own switch, plus: only inside a real Lambda (not tests, not the local cloud,
    not `sam local`), where the X-Ray daemon exists. Even a disabled Tracer imports the SDK."""
    disabled = os.getenv("POWERTOOLS_TRACE_DISABLED", "false").lower() in {"1", "true"}
    in_lambda = bool(os.getenv("AWS_LAMBDA_FUNCTION_NAME")) and not os.getenv("AWS_SAM_LOCAL")
    return in_lambda and not disabled


def traced(handler: Handler) -> Handler:
    """Like `Tracer.capture_lambda_handler` (response not captured), but builds the Tracer
    on the first invocation instead of at import time, and only where tracing is on."""
    wrapped: list[Callable[..., Any]] = []

    @wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        if not wrapped:
            enabled = tracing_enabled()
            wrapped.append(
                tracer().capture_lambda_handler(handler, capture_response=False)
                if enabled
                else handler
            )
        return wrapped[0](event, context)

    return wrapper  # type: ignore[return-value]
