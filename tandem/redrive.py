"""`tandem redrive`: the job dead-letter queue's messages back onto the job queue.

Receive (10 at a time), send, and delete from the DLQ only what was sent, rewriting bodies so a
redriven message keeps its job (docs/CONTRACTS.md, "Retry and redrive"). The job-id rules are
the pipeline's own (`tandem_common.contracts`).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from tandem_common.contracts import is_inbox_key, s3_job_id, s3_revision, s3_uri, sqs_job_id

from tandem.local import local_client


class RedriveError(ValueError):
    """Not enough to find the queues (no stack, local URL or queue URLs)."""


def redrive_body(body: str, message_id: str) -> str:
    """The body to send back to the job queue for a DLQ message.

    The job DLQ collects three kinds of message: job-queue messages (after maxReceiveCount),
    S3 "Object Created" events that EventBridge could not deliver, and Lambda on-failure records
    (`requestPayload` = that event). Queue messages keep their job: one without a `job_id`
    gets the id ingest gave it (`uuid5(NS, "sqs:" + MessageId)`; SQS keeps the MessageId when
    it dead-letters a message), since the resent message gets a new MessageId. S3 events become
    `{"job_id": <the S3 entry's job id>, "s3_uri"}`, so the job is the one the upload names.
    Anything else (not JSON, not a job request) goes back unchanged.
    """
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if not isinstance(payload, dict):
        return body
    if isinstance(payload.get("requestPayload"), dict) and "requestContext" in payload:
        payload = payload["requestPayload"]
    if payload.get("source") == "aws.s3" and payload.get("detail-type") == "Object Created":
        detail = payload.get("detail") or {}
        bucket = (detail.get("bucket") or {}).get("name")
        obj = detail.get("object") or {}
        key, version, etag = obj.get("key"), obj.get("version-id"), obj.get("etag")
        if not (bucket and key and (version or etag)) or not is_inbox_key(key):
            return body
        job_id = s3_job_id(bucket, key, s3_revision(version, str(etag or "")))
        return json.dumps({"job_id": job_id, "s3_uri": s3_uri(bucket, key)})
    if "job_id" not in payload and any(k in payload for k in ("documents", "source", "s3_uri")):
        payload["job_id"] = sqs_job_id(message_id)
        return json.dumps(payload)
    return body


def _message_attributes(m: dict[str, Any]) -> dict[str, Any]:
    """Receive returns empty list fields that SendMessage refuses: keep the scalar ones."""
    out = {}
    for name, attr in (m.get("MessageAttributes") or {}).items():
        kept = {k: v for k, v in attr.items() if k in ("DataType", "StringValue", "BinaryValue")}
        if "StringValue" in kept or "BinaryValue" in kept:
            out[name] = kept
    return out


def redrive_messages(
    sqs: Any, dlq_url: str, queue_url: str, limit: int | None = None, visibility: int = 120
) -> tuple[int, int]:
    """Move up to `limit` messages (default: what the DLQ holds now) from the DLQ to the queue,
    in batches of 10: send, then delete from the DLQ only the messages whose send succeeded.
    Nothing is lost: a message that was not sent stays in the DLQ. Returns (moved, not sent)."""
    if limit is None:
        attrs = sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        limit = int(attrs.get("ApproximateNumberOfMessages", 0))
    moved = unsent = 0
    while moved + unsent < limit:
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, limit - moved - unsent),
            VisibilityTimeout=visibility,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        entries = []
        for i, m in enumerate(messages):
            entry: dict[str, Any] = {
                "Id": str(i),
                "MessageBody": redrive_body(m["Body"], m["MessageId"]),
            }
            if attributes := _message_attributes(m):
                entry["MessageAttributes"] = attributes
            entries.append(entry)
        sent = {
            e["Id"]
            for e in sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get(
                "Successful", []
            )
        }
        done = [(i, m) for i, m in enumerate(messages) if str(i) in sent]
        unsent += len(messages) - len(done)
        if done:
            sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in done],
            )
        moved += len(done)
    return moved, unsent


def redrive_queues(
    stack: str | None,
    local_url: str | None,
    queue_url: str | None,
    dlq_url: str | None,
    region: str,
) -> tuple[Any, str, str]:
    """(sqs client, job queue URL, DLQ URL) from explicit URLs, a local cloud or a stack."""
    import boto3

    if local_url:
        sqs = local_client("sqs", local_url, region)
        name = stack or "tandem"
        queue_url = queue_url or sqs.get_queue_url(QueueName=f"{name}-JobQueue")["QueueUrl"]
        dlq_url = dlq_url or sqs.get_queue_url(QueueName=f"{name}-JobDeadLetterQueue")["QueueUrl"]
        return sqs, str(queue_url), str(dlq_url)
    if stack and not (queue_url and dlq_url):
        cfn = boto3.client("cloudformation")
        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
        }
        queue_url = queue_url or outputs.get("JobQueueUrl")
        dlq_url = dlq_url or outputs.get("JobDeadLetterQueueUrl")
        if not (queue_url and dlq_url):
            raise RedriveError(f"stack {stack} has no JobQueueUrl/JobDeadLetterQueueUrl outputs")
        return boto3.client("sqs", region_name=cfn.meta.region_name), queue_url, dlq_url
    if not (queue_url and dlq_url):
        raise RedriveError("give --stack, --local URL, or both --queue-url and --dlq-url")
    parts = urllib.parse.urlsplit(queue_url)
    if parts.hostname in ("127.0.0.1", "localhost"):
        return local_client("sqs", f"{parts.scheme}://{parts.netloc}", region), queue_url, dlq_url
    return boto3.client("sqs", region_name=region), queue_url, dlq_url
