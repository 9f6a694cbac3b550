"""Ingest: EventBridge S3 "Object Created" (inbox/) and SQS job-queue batches → jobs.

SQS batches report partial failures: a poison message fails alone, the others succeed. Each
failed record is logged at WARNING with its message id and reason (never the message body).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from tandem_common.observability import bind_job, job_context, logger, traced
from tandem_common.usecases.ingest import (
    failure_reason,
    ingest,
    submission_from_message,
    submission_from_object_created,
    submit,
)
from tandem_common.usecases.sqs_records import SqsRecord, process_sqs_batch

ingest()  # settings validated at cold start


def record_handler(record: SqsRecord) -> dict[str, Any]:
    message_id = record["messageId"]
    try:
        submission = submission_from_message(record["body"], message_id)
        with job_context(submission.job_id):
            result = submit(submission=submission)
            logger.info("job from sqs", extra={"message_id": message_id})
    except Exception as exc:
        logger.warning(
            "sqs record failed", extra={"message_id": message_id, "reason": failure_reason(exc)}
        )
        raise
    return result


@logger.inject_lambda_context(clear_state=True)
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ingest().idempotency_config.register_lambda_context(context)
    if "Records" in event:
        return process_sqs_batch(event, record_handler)
    submission = submission_from_object_created(event)
    if submission is None:
        logger.info("ignored object outside the inbox")
        return {"skipped": True}
    bind_job(submission.job_id)
    result = submit(submission=submission)
    logger.info("job from s3")
    return result
