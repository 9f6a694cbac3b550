"""SQS batches with partial failures (`ReportBatchItemFailures`), as Powertools' `BatchProcessor`
and `process_partial_response` run them: each record is handled on its own; the message ids of
the records whose handler raised come back in `batchItemFailures` (SQS redelivers only those);
when every record failed the whole batch fails (an exception, so Lambda counts the error).

Written here rather than imported: `aws_lambda_powertools.utilities.batch` imports asyncio, every
event data class and the DynamoDB/Kinesis/SQS parser models when it is imported, which cost the
ingest and webhook functions more than their whole cold-start budget over `import boto3`
(docs/BENCHMARKS.md, "Lambda handlers"); these twenty lines are what they used of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SqsRecord = dict[str, Any]  # one `Records` item of an SQS event: messageId, body, attributes...


class BatchFailed(Exception):
    """Every record of the batch failed: raised so that the whole batch is retried."""


def process_sqs_batch(
    event: dict[str, Any], handle_record: Callable[[SqsRecord], Any]
) -> dict[str, list[dict[str, str]]]:
    records: list[SqsRecord] = event.get("Records") or []
    failed: list[str] = []
    errors: list[str] = []
    for record in records:
        try:
            handle_record(record)
        except Exception as exc:  # noqa: BLE001 - one record's failure must not fail the others
            failed.append(str(record["messageId"]))
            errors.append(type(exc).__name__)
    if records and len(failed) == len(records):
        raise BatchFailed(f"all {len(records)} records failed: {', '.join(sorted(set(errors)))}")
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
