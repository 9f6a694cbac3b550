"""Fail step (state machine Catch): `{"job_id","error":{"Error","Cause"}}` → job FAILED.

Counts already recorded are kept; a job already terminal is left untouched.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.jobs import JobStore
from tandem_common.models import ErrorInfo, FailInput, FailResult, StepError
from tandem_common.notifications import notify_job_finished
from tandem_common.observability import logger, traced
from tandem_common.settings import get_settings

settings = get_settings()  # validated at cold start
MAX_MESSAGE = 1000

jobs = JobStore(settings.resources.jobs_table)  # cheap: its client is created on first use


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


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = FailInput.model_validate(event)
    store = jobs
    job, changed = store.mark_failed(request.job_id, error_info(request.error))
    logger.info(
        "job failed", extra={"job_id": job.job_id, "status": job.status, "changed": changed}
    )
    if job.status == "FAILED":
        notify_job_finished(job, settings, store)
    return FailResult(job_id=job.job_id, status=job.status).model_dump()
