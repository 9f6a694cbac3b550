"""Local event sources: S3 "Object Created" -> EventBridge rule -> function, and SQS -> function.

S3: we poll the bucket in-process rather than hook moto's notification code: it sees every write
however it arrives (boto3 in-process, the moto server, a presigned PUT) and needs no moto
internals. The poll lists only the key prefixes the rules can match (`list_objects_v2`: moto's
`list_object_versions` deep-copies every object of the bucket on each call, which made memory and
CPU grow with the bucket under load), then asks `head_object` for the version of each new
listing entry; a seen-set keyed by key+version id gives one event per stored object version like
S3's own notifications (re-uploading the same bytes is a new version, hence a new event, as in
AWS).  Only buckets with EventBridge notifications on are
watched, and only rules whose pattern matches the built event are invoked.

SQS: one poller per `SQS` event source: batches of up to `BatchSize`, the real SQS event shape,
`ReportBatchItemFailures` honoured (only the successes are deleted; failures and function errors
become visible again after the queue's visibility timeout, so moto's RedrivePolicy moves a poison
message to the DLQ after maxReceiveCount receives).

SNS: a function's `SNS` event source is a subscription in moto; `moto_compat.route_sns_to_lambda`
hands each message published to it to `SnsLambdaDelivery`, which invokes the function
asynchronously with the real SNS event shape and, like Lambda's asynchronous invocation, tries
twice more if the function fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- EventBridge patterns
def _match_value(rule: Any, value: Any, present: bool) -> bool:
    if isinstance(rule, dict):
        if "prefix" in rule:
            return present and isinstance(value, str) and value.startswith(rule["prefix"])
        if "suffix" in rule:
            return present and isinstance(value, str) and value.endswith(rule["suffix"])
        if "exists" in rule:
            return present == bool(rule["exists"])
        if "anything-but" in rule:
            ab = rule["anything-but"]
            if isinstance(ab, dict) and "prefix" in ab:
                return present and isinstance(value, str) and not value.startswith(ab["prefix"])
            ab = ab if isinstance(ab, list) else [ab]
            return present and value not in ab
        if "equals-ignore-case" in rule:
            return (
                present
                and isinstance(value, str)
                and value.lower() == str(rule["equals-ignore-case"]).lower()
            )
        if "numeric" in rule:
            ops = rule["numeric"]
            if not present or not isinstance(value, int | float):
                return False
            cmp = {
                "<": value.__lt__,
                "<=": value.__le__,
                "=": value.__eq__,
                ">": value.__gt__,
                ">=": value.__ge__,
            }
            return all(cmp[ops[i]](ops[i + 1]) for i in range(0, len(ops), 2))
        raise ValueError(f"unsupported EventBridge pattern operator {rule}")
    return present and value == rule


def pattern_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge content matching: every field in the pattern must match (values are OR lists)."""
    for key, rule in pattern.items():
        present = isinstance(event, dict) and key in event
        value = event.get(key) if isinstance(event, dict) else None
        if isinstance(rule, dict):
            if not present or not isinstance(value, dict) or not pattern_matches(rule, value):
                return False
            continue
        rules = rule if isinstance(rule, list) else [rule]
        values = value if isinstance(value, list) else [value]
        if not any(_match_value(r, v, present) for r in rules for v in values):
            return False
    return True


def s3_object_created_event(
    bucket: str,
    key: str,
    size: int,
    etag: str,
    version_id: str | None,
    region: str = "us-east-1",
    account: str = "123456789012",
    reason: str = "PutObject",
) -> dict[str, Any]:
    """The EventBridge event S3 sends for a new object (detail-type "Object Created")."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj: dict[str, Any] = {
        "key": key,
        "size": size,
        "etag": etag.strip('"'),
        "sequencer": hashlib.sha1(f"{key}{version_id}".encode(), usedforsecurity=False)
        .hexdigest()[:18]
        .upper(),
    }
    if version_id and version_id != "null":
        obj["version-id"] = version_id
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": account,
        "time": now,
        "region": region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account,
            "source-ip-address": "127.0.0.1",
            "reason": reason,
        },
    }


class _Poller(ABC):
    """A daemon thread that calls `poll_once` until stopped, pausing when there was nothing."""

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.errors = 0

    def start(self) -> _Poller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.poll_once()
            except Exception:
                self.errors += 1
                log.exception("%s poll failed", self.name)
                busy = False
            if not busy:
                self._stop.wait(self.interval)

    @abstractmethod
    def poll_once(self) -> bool:
        """Deliver what is new; True when there was work (poll again at once)."""


def key_prefixes(patterns: list[dict[str, Any]]) -> list[str | None]:
    """The S3 key prefixes the rules can match; `[None]` (the whole bucket) if any rule may match
    a key outside a prefix."""
    prefixes: set[str] = set()
    for pattern in patterns:
        keys = pattern.get("detail", {}).get("object", {}).get("key")
        if not isinstance(keys, list) or not all(
            isinstance(k, dict) and isinstance(k.get("prefix"), str) for k in keys
        ):
            return [None]
        prefixes.update(k["prefix"] for k in keys)
    return list(sorted(prefixes)) or [None]


class S3EventBridgePoller(_Poller):
    """Watches buckets with EventBridge notifications and delivers matching events to rules."""

    def __init__(
        self,
        s3_client: Any,
        buckets: list[str],
        rules: list[tuple[str, dict[str, Any]]],
        invoke: Callable[[str, dict[str, Any]], Any],
        interval: float = 0.5,
    ) -> None:
        super().__init__("s3-eventbridge-poller", interval)
        self.s3 = s3_client
        self.buckets = buckets
        self.rules = rules  # (function name, pattern)
        self.invoke = invoke
        self.seen: set[tuple[str, str, str]] = set()
        self.listed: set[tuple[str, str, str]] = set()
        self.prefixes = key_prefixes([pattern for _, pattern in rules])
        self.delivered = 0

    def skip_existing(self) -> S3EventBridgePoller:
        """Take what the buckets hold now as already notified: S3 sends events only for writes
        made after notifications are on (here: the seed's objects, written before we start)."""
        for bucket in self.buckets:
            for v in self._versions(bucket):
                self.seen.add((bucket, v["Key"], v.get("VersionId") or v["ETag"]))
        return self

    def poll_once(self) -> bool:
        busy = False
        for bucket in self.buckets:
            for v in self._versions(bucket):
                ident = (bucket, v["Key"], v.get("VersionId") or v["ETag"])
                if ident in self.seen:
                    continue
                self.seen.add(ident)
                event = s3_object_created_event(
                    bucket, v["Key"], v["Size"], v["ETag"], v.get("VersionId")
                )
                for fn, pattern in self.rules:
                    if pattern_matches(pattern, event):
                        self.delivered += 1
                        busy = True
                        threading.Thread(
                            target=self._deliver, args=(fn, event), daemon=True
                        ).start()
        return busy

    def _versions(self, bucket: str) -> list[dict[str, Any]]:
        """New object versions under the watched prefixes (listing entries not seen before)."""
        out = []
        for prefix in self.prefixes:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix or ""
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    entry = (bucket, obj["Key"], f"{obj['ETag']}@{obj['LastModified']}")
                    if entry in self.listed:
                        continue
                    try:
                        head = self.s3.head_object(Bucket=bucket, Key=obj["Key"])
                    except self.s3.exceptions.ClientError:
                        continue  # deleted between the listing and now: no event, as in S3
                    self.listed.add(entry)
                    out.append({**obj, "VersionId": head.get("VersionId")})
        return out

    def _deliver(self, fn: str, event: dict[str, Any]) -> None:
        # EventBridge invokes asynchronously; the rule's RetryPolicy retries failed deliveries.
        for attempt in range(3):
            result = self.invoke(fn, event)
            if not getattr(result, "error_type", None):
                return
            log.warning(
                "S3 event delivery to %s failed (attempt %d): %s",
                fn,
                attempt + 1,
                getattr(result, "payload", {}).get("errorType"),
            )
            time.sleep(1 + attempt)


class SqsPoller(_Poller):
    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        queue_arn: str,
        function: str,
        invoke: Callable[[str, dict[str, Any]], Any],
        batch_size: int = 10,
        report_batch_item_failures: bool = True,
        interval: float = 0.5,
        region: str = "us-east-1",
    ) -> None:
        super().__init__(f"sqs-poller-{queue_arn.rsplit(':', 1)[-1]}", interval)
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function = function
        self.invoke = invoke
        self.batch_size = min(10, max(1, batch_size))
        self.partial = report_batch_item_failures
        self.region = region
        self.batches = 0

    def poll_once(self) -> bool:
        resp = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        messages = resp.get("Messages", [])
        if not messages:
            return False
        self.batches += 1
        event = {"Records": [self._record(m) for m in messages]}
        result = self.invoke(self.function, event)
        if getattr(result, "error_type", None):
            log.warning(
                "SQS batch of %d failed as a whole (%s); messages become visible again",
                len(messages),
                result.payload.get("errorType"),
            )
            return True
        failed: set[str] = set()
        if self.partial and isinstance(result.payload, dict):
            for item in result.payload.get("batchItemFailures") or []:
                failed.add(str(item.get("itemIdentifier")))
        to_delete = [m for m in messages if m["MessageId"] not in failed]
        if to_delete:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(to_delete)
                ],
            )
        return True

    def _record(self, m: dict[str, Any]) -> dict[str, Any]:
        attrs = m.get("Attributes", {})
        msg_attrs = {}
        for k, v in (m.get("MessageAttributes") or {}).items():
            msg_attrs[k] = {
                "stringValue": v.get("StringValue"),
                "binaryValue": v.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": v.get("DataType"),
            }
        return {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {
                k: str(attrs[k])
                for k in (
                    "ApproximateReceiveCount",
                    "SentTimestamp",
                    "SenderId",
                    "ApproximateFirstReceiveTimestamp",
                    "MessageGroupId",
                    "MessageDeduplicationId",
                )
                if k in attrs
            },
            "messageAttributes": msg_attrs,
            "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),  # noqa: S324
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }


def dumps(event: Any) -> str:
    return json.dumps(event)


def sns_event(
    subscription_arn: str, topic_arn: str, message_id: str, subject: str | None, message: str
) -> dict[str, Any]:
    """The event SNS invokes a subscribed function with (one record per message)."""
    region = topic_arn.split(":")[3]
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": topic_arn,
                    "Subject": subject,
                    "Message": message,
                    "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                    "SignatureVersion": "1",
                    "Signature": "local",
                    "SigningCertUrl": f"https://sns.{region}.amazonaws.com/local.pem",
                    "UnsubscribeUrl": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {},
                },
            }
        ]
    }


class SnsLambdaDelivery:
    """One function's SNS subscriptions, delivered by the local Lambda service: each message is
    an asynchronous invocation (a thread), retried twice when the function fails, as Lambda
    retries asynchronous invocations (1 s and 2 s apart here; about 1 and 2 minutes in AWS)."""

    def __init__(
        self, function: str, invoke: Callable[[str, dict[str, Any]], Any], retry_s: float = 1.0
    ) -> None:
        self.function = function
        self.invoke = invoke
        self.retry_s = retry_s
        self.delivered = 0
        self.failed = 0
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()

    def __call__(
        self,
        subscription_arn: str,
        topic_arn: str,
        message_id: str,
        subject: str | None,
        message: str,
    ) -> None:
        event = sns_event(subscription_arn, topic_arn, message_id, subject, message)
        thread = threading.Thread(target=self._deliver, args=(event,), daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def close(self, timeout: float = 60.0) -> None:
        """No further attempts; wait (bounded) for the invocations under way, so none reaches a
        Lambda service that has stopped."""
        self._closed.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _deliver(self, event: dict[str, Any]) -> None:
        for attempt in range(3):
            if self._closed.is_set():
                return
            result = self.invoke(self.function, event)
            if not getattr(result, "error_type", None):
                self.delivered += 1
                return
            log.warning(
                "SNS delivery to %s failed (attempt %d): %s",
                self.function,
                attempt + 1,
                getattr(result, "payload", {}).get("errorType"),
            )
            self._closed.wait(self.retry_s * (attempt + 1))
        self.failed += 1
