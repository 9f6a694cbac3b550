"""Watchdog (EventBridge schedule): jobs QUEUED/RUNNING past their deadline → FAILED.

Event: the schedule's input `{"deadline_seconds": N}` (optional) → `{"checked", "failed",
"still_running", "errors"}`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.workflows import Workflows
from tandem_common.observability import logger, traced
from tandem_common.settings import get_settings
from tandem_common.usecases.watchdog import DEFAULT_DEADLINE_SECONDS, run_watchdog

settings = get_settings()  # validated at cold start

jobs = JobStore(settings.resources.jobs_table)  # cheap: its client is created on first use


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = int((event or {}).get("deadline_seconds") or DEFAULT_DEADLINE_SECONDS)
    if deadline < 1:
        raise ValueError("deadline_seconds must be positive")
    report = run_watchdog(
        deadline,
        settings,
        jobs,
        Workflows.for_settings(settings),
        time_left_ms=context.get_remaining_time_in_millis,
    )
    logger.info(
        "watchdog run",
        extra={
            "checked": report.checked,
            "failed": len(report.failed),
            "still_running": len(report.still_running),
        },
    )
    return report.as_dict()
