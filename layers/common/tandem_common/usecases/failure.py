"""The fail step (the state machine's Catch): a job FAILED with its error, keeping what is known.

Counts already recorded are kept; a job already terminal is left untouched.
"""

from __future__ import annotations

import json

from tandem_common.adapters.jobs import JobStore
from tandem_common.models import ErrorInfo, FailResult, StepError
from tandem_common.observability import logger
from tandem_common.settings import Settings
from tandem_common.usecases.notifications import notify_job_finished, record_job_end

MAX_MESSAGE = 1000


def error_info(error: StepError) -> ErrorInfo:
    """Step Functions' `{Error, Cause}`; a Lambda Cause is JSON with an `errorMessage`."""
    message = error.Cause or error.Error
    try:
        cause = json.loads(message)
        if isinstance(cause, dict) and cause.get("errorMessage"):
            message = str(cause["errorMessage"])
    except ValueError:
        pass
    return ErrorInfo(code=error.Error, message=message[:MAX_MESSAGE])


def record_failure(
    job_id: str, error: StepError, settings: Settings, store: JobStore
) -> FailResult:
    job, changed = store.mark_failed(job_id, error_info(error))
    if changed:
        record_job_end("FAILED")
    logger.info(
        "job failed",
        extra={"status": job.status, "changed": changed, "error": error_info(error).code},
    )
    if job.status == "FAILED":
        notify_job_finished(job, settings, store)
    return FailResult(job_id=job.job_id, status=job.status)
