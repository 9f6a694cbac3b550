"""Preprocess step: `{"job_id", "execution_arn"}` → batch files in S3 → refs for the Map state
(`execution_arn` is the running execution's: an Express one may hand the job to Standard)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.storage import Storage
from tandem_common.models import ExecutionInput
from tandem_common.observability import bind_job, logger, traced
from tandem_common.settings import get_settings
from tandem_common.usecases.preprocess import preprocess_job

settings = get_settings()  # validated at cold start

jobs = JobStore(settings.resources.jobs_table)  # cheap: its client is created on first use


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ExecutionInput.model_validate(event)
    bind_job(request.job_id)
    result = preprocess_job(request.job_id, settings, jobs, Storage(), request.execution_arn)
    return result.model_dump()
