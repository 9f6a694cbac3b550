"""Webhook deliveries (SQS webhook queue): each message is one signed attempt of a job's webhook.

`{"job_id","attempt","not_before"}` → `usecases/webhook_delivery.attempt_delivery`. Partial batch
failures: a message whose attempt could not be recorded or whose follow-up could not be queued
comes back alone (after maxReceiveCount receives: the webhook DLQ).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.adapters.jobs import JobStore
from tandem_common.observability import logger, traced
from tandem_common.settings import get_settings
from tandem_common.usecases.sqs_records import SqsRecord, process_sqs_batch
from tandem_common.usecases.webhook_delivery import attempt_delivery, webhook_queue

settings = get_settings()  # validated at cold start

jobs = JobStore(settings.resources.jobs_table)  # cheap: its client is created on first use
queue = webhook_queue(settings)


def record_handler(record: SqsRecord) -> str:
    return attempt_delivery(record["body"], settings, jobs, queue)


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_sqs_batch(event, record_handler)
