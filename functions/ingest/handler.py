"""Ingest: EventBridge S3 "Object Created" (inbox/) and SQS job-queue batches → jobs.

SQS batches report partial failures: a poison message fails alone, the others succeed. Each
failed record is logged at WARNING with its message id and reason (never the message body).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.observability import logger, traced
from tandem_common.usecases.ingest import (
    failure_reason,
    ingest,
    submission_from_message,
    submission_from_object_created,
    submit,
)

ingest()  # settings validated at cold start
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    try:
        submission = submission_from_message(record.body, record.message_id)
        result = submit(submission=submission)
    except Exception as exc:
        # the batch processor reports the failure; it logs the reason only at DEBUG
        logger.warning(
            "sqs record failed",
            extra={"message_id": record.message_id, "reason": failure_reason(exc)},
        )
        raise
    logger.info("job from sqs", extra={"job_id": result["job_id"], "message_id": record.message_id})
    return result


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ingest().idempotency_config.register_lambda_context(context)
    if "Records" in event:
        return dict(
            process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        )
    submission = submission_from_object_created(event)
    if submission is None:
        logger.info("ignored object outside the inbox")
        return {"skipped": True}
    result = submit(submission=submission)
    logger.info("job from s3", extra={"job_id": result["job_id"]})
    return result
