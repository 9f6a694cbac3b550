"""Fail step (state machine Catch): `{"job_id","error":{"Error","Cause"}}` → job FAILED."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.adapters.jobs import JobStore
from tandem_common.models import FailInput
from tandem_common.observability import bind_job, logger, traced
from tandem_common.settings import get_settings
from tandem_common.usecases.failure import record_failure

settings = get_settings()  # validated at cold start

jobs = JobStore(settings.resources.jobs_table)  # cheap: its client is created on first use


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = FailInput.model_validate(event)
    bind_job(request.job_id)
    return record_failure(request.job_id, request.error, settings, jobs).model_dump()
