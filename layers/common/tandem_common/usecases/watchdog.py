"""Watchdog: a job still QUEUED/RUNNING past its deadline is marked FAILED (`watchdog_timeout`).

Standard jobs: the deadline is `created_at + deadline_seconds` (the schedule's input; 6 h 15 min
by default, past the state machine's 6 h TimeoutSeconds). A top-level execution timeout, an
aborted execution or one that never started skips the Catch → fail handler, so without this the
job would stay RUNNING. The execution is checked first: one still RUNNING is left alone (the
state machine's own timeout ends it; the next run then fails the job).

Express jobs: no API tells whether an Express execution still runs (DescribeExecution does not
answer for them), and none needs to: an Express execution ends within 5 minutes of its start.
Every start is followed by a write to the job (its execution ARN, then the steps' own writes),
so an Express job with an execution whose record has not changed for 5 minutes plus a margin
(`EXPRESS_GRACE_S`) has nothing running any more: it is failed without asking Step Functions.
An Express job that never got an execution (its start failed; the caller may still retry it)
keeps the Standard deadline.

The status change is the store's conditional non-terminal→FAILED write, so a job that finished
meanwhile is untouched, and the counts already recorded are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tandem_common.adapters import aws
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.workflows import Workflows
from tandem_common.contracts import EXPRESS_MAX_DURATION_S, is_express_execution
from tandem_common.models import ErrorInfo
from tandem_common.observability import STUCK_JOBS, emit, job_context, logger
from tandem_common.settings import Settings
from tandem_common.usecases.notifications import notify_job_finished, record_job_end

DEFAULT_DEADLINE_SECONDS = 6 * 3600 + 15 * 60
EXPRESS_GRACE_S = 60  # past Express's 5 minutes: clocks and the last writes' latency
WATCHDOG_CODE = "watchdog_timeout"


@dataclass
class WatchdogReport:
    checked: int = 0
    failed: list[str] = field(default_factory=list)
    still_running: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "failed": self.failed,
            "still_running": self.still_running,
            "errors": self.errors,
        }


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def express_deadline_seconds() -> int:
    return EXPRESS_MAX_DURATION_S + EXPRESS_GRACE_S


def run_watchdog(
    deadline_seconds: int,
    settings: Settings,
    store: JobStore,
    workflows: Workflows,
    now: datetime | None = None,
    time_left_ms: Any = None,
) -> WatchdogReport:
    now = now or datetime.now(UTC)
    express_s = min(deadline_seconds, express_deadline_seconds())
    report = WatchdogReport()
    for row in store.non_terminal_created_before(iso(now - timedelta(seconds=express_s))):
        if time_left_ms is not None and time_left_ms() < 5_000:
            break  # the next scheduled run picks up the rest
        with job_context(row["job_id"]):
            reason = _stuck(row, deadline_seconds, express_s, store, workflows, now, report)
            if reason is not None:
                _fail(row["job_id"], reason, settings, store, report)
    return report


def _stuck(
    row: dict[str, str],
    deadline_seconds: int,
    express_s: int,
    store: JobStore,
    workflows: Workflows,
    now: datetime,
    report: WatchdogReport,
) -> str | None:
    """Why the job is stuck (its FAILED message), or None when it is not (yet). `row` is the
    status index's: job id, status, created_at and the execution ARN (whose form tells an Express
    execution from a Standard one, so no Standard job is read or described before its deadline)."""
    job_id = row["job_id"]
    arn = row.get("execution_arn") or ""
    if is_express_execution(arn):
        report.checked += 1
        job = store.get(job_id)
        if job is None:
            return None
        idle = (now - _parse(job.updated_at)).total_seconds()
        if idle < express_s:
            return None  # an Express execution may still run
        return (
            f"job was {job.status} on the Express workflow with no change for {int(idle)} s "
            f"(an Express execution ends within {EXPRESS_MAX_DURATION_S} s)"
        )
    if now - _parse(row["created_at"]) < timedelta(seconds=deadline_seconds):
        return None
    report.checked += 1
    arn = arn or workflows.arn_of(job_id)
    try:
        ex_status = workflows.status(arn) if arn else None
    except Exception as exc:  # noqa: BLE001 - one bad lookup must not block the others
        logger.warning(
            "describe execution failed", extra={"error": aws.error_code(exc) or type(exc).__name__}
        )
        report.errors.append(job_id)
        return None
    if ex_status == "RUNNING":
        report.still_running.append(job_id)
        return None
    return (
        f"job was {row['status']} past its deadline of {deadline_seconds} s "
        f"(created {row.get('created_at')}); execution: {ex_status or 'none'}"
    )


def _fail(
    job_id: str, message: str, settings: Settings, store: JobStore, report: WatchdogReport
) -> None:
    job, changed = store.mark_failed(job_id, ErrorInfo(code=WATCHDOG_CODE, message=message))
    logger.info("watchdog", extra={"changed": changed, "workflow": job.workflow})
    if changed:
        report.failed.append(job_id)
        emit(STUCK_JOBS)
        record_job_end("FAILED")
        notify_job_finished(job, settings, store)
