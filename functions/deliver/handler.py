"""Deliver step: `{"job_id","batch_results"}` → result artefacts, final status, event, webhook."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.storage import Storage
from tandem_common.models import DeliverInput
from tandem_common.observability import bind_job, logger, traced
from tandem_common.settings import get_settings
from tandem_common.usecases.deliver import deliver_job
from tandem_common.usecases.indexing import Indexer

settings = get_settings()  # validated at cold start

jobs = JobStore(settings.resources.jobs_table)  # cheap: its client is created on first use
indexer = Indexer.from_settings(settings)  # None with VectorIndexing=false


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = DeliverInput.model_validate(event)
    bind_job(request.job_id)
    result = deliver_job(request.job_id, request.batch_results, settings, jobs, Storage(), indexer)
    return result.model_dump()
