"""Collect step (the last state of each Map child): one batch's output → its result shard.

Event: `{"job_id", "index", "request": {"inputs_uri", "outputs_uri"}, "error"?: {"Error",
"Cause"}}` (the child's state) → `{"index", "ok", "rows", "reason"}`.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.storage import Storage
from tandem_common.models import CollectInput
from tandem_common.observability import bind_job, logger, traced
from tandem_common.settings import get_settings
from tandem_common.usecases.collect import collect_batch
from tandem_common.usecases.indexing import Indexer

settings = get_settings()  # validated at cold start

jobs = JobStore(settings.resources.jobs_table)  # cheap: its client is created on first use
indexer = Indexer.from_settings(settings)  # None with VectorIndexing=false; paces this container


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = CollectInput.model_validate(event)
    bind_job(request.job_id)
    return collect_batch(request, settings, jobs, Storage(), indexer).model_dump()
