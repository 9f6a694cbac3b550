"""Watchdog: a job still QUEUED/RUNNING past its deadline is marked FAILED (`watchdog_timeout`).

A job's deadline is `created_at + deadline_seconds` (the schedule's input; 6 h 15 min by default,
past the state machine's 6 h TimeoutSeconds). A top-level execution timeout, an aborted
execution or one that never started skips the Catch → fail handler, so without this the job
would stay RUNNING. The execution is checked first: one still RUNNING is left alone (the state
machine's own timeout ends it; the next run then fails the job). The status change is the
store's conditional non-terminal→FAILED write, so a job that finished meanwhile is untouched,
and the counts already recorded are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tandem_common.adapters import aws
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.workflows import Workflows
from tandem_common.models import ErrorInfo
from tandem_common.observability import logger
from tandem_common.settings import Settings
from tandem_common.usecases.notifications import notify_job_finished

DEFAULT_DEADLINE_SECONDS = 6 * 3600 + 15 * 60
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


def run_watchdog(
    deadline_seconds: int,
    settings: Settings,
    store: JobStore,
    workflows: Workflows,
    now: datetime | None = None,
    time_left_ms: Any = None,
) -> WatchdogReport:
    now = now or datetime.now(UTC)
    cutoff = iso(now - timedelta(seconds=deadline_seconds))
    report = WatchdogReport()
    for row in store.non_terminal_created_before(cutoff):
        if time_left_ms is not None and time_left_ms() < 5_000:
            break  # the next scheduled run picks up the rest
        report.checked += 1
        job_id = row["job_id"]
        arn = row.get("execution_arn") or workflows.arn_of(job_id)
        try:
            ex_status = workflows.status(arn) if arn else None
        except Exception as exc:  # noqa: BLE001 - one bad lookup must not block the others
            logger.warning(
                "describe execution failed",
                extra={"job_id": job_id, "error": aws.error_code(exc) or type(exc).__name__},
            )
            report.errors.append(job_id)
            continue
        if ex_status == "RUNNING":
            report.still_running.append(job_id)
            continue
        message = (
            f"job was {row['status']} past its deadline of {deadline_seconds} s "
            f"(created {row.get('created_at')}); execution: {ex_status or 'none'}"
        )
        job, changed = store.mark_failed(job_id, ErrorInfo(code=WATCHDOG_CODE, message=message))
        logger.info(
            "watchdog", extra={"job_id": job_id, "changed": changed, "execution": ex_status}
        )
        if changed:
            report.failed.append(job_id)
            notify_job_finished(job, settings, store)
    return report
