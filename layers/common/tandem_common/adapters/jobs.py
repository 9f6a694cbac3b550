"""The jobs table: `JobStore` with a conditional write for every status change.

Transitions: QUEUED→RUNNING, RUNNING→SUCCEEDED|PARTIAL, non-terminal→FAILED. Repeating the
same terminal write is a no-op; a terminal job is never overwritten.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from tandem_common.adapters import aws
from tandem_common.contracts import NON_TERMINAL_STATUSES, TERMINAL_STATUSES, JobStatus
from tandem_common.errors import InvalidTransition, JobNotFound
from tandem_common.models import Counts, DocumentFailure, ErrorInfo, JobRecord, WebhookOutcome

MAX_FAILED_ON_RECORD = 100
# GSI of the jobs table (template.yaml): status + created_at, for the watchdog's stuck-job query.
STATUS_INDEX = "status-created_at"
_ser = TypeSerializer()
_de = TypeDeserializer()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_plain(value: Any) -> Any:
    """DynamoDB's Decimals (and sets) as plain ints, floats and lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [to_plain(v) for v in value]
    return value


def _item(record: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in record.items() if v is not None}


def _values(**values: Any) -> dict[str, Any]:
    return {f":{k}": _ser.serialize(v) for k, v in values.items()}


class JobStore:
    """DynamoDB-backed job records (client injectable; defaults to the cached client)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.dynamodb()

    def _is_conditional_failure(self, exc: BaseException) -> bool:
        return aws.error_code(exc) == "ConditionalCheckFailedException"

    def get(self, job_id: str) -> JobRecord | None:
        out = self.client.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        if "Item" not in out:
            return None
        raw = {k: to_plain(_de.deserialize(v)) for k, v in out["Item"].items()}
        return JobRecord.model_validate(raw)

    def require(self, job_id: str) -> JobRecord:
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(f"job {job_id} not found")
        return job

    def create(self, job: JobRecord) -> tuple[JobRecord, bool]:
        """Put the job if absent. Returns (stored job, created?) — a duplicate returns the first."""
        try:
            self.client.put_item(
                TableName=self._table,
                Item=_item(job.model_dump()),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except Exception as exc:
            if not self._is_conditional_failure(exc):
                raise
            return self.require(job.job_id), False
        return job, True

    def _update(
        self, job_id: str, sets: dict[str, Any], condition: str, cond_values: dict[str, Any]
    ) -> bool:
        names = {f"#{k}": k for k in sets}
        if "#status" in condition:
            names["#status"] = "status"
        expr = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
        try:
            self.client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=expr,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_values(**sets, **cond_values),
            )
        except Exception as exc:
            if self._is_conditional_failure(exc):
                return False
            raise
        return True

    def set_execution_arn(self, job_id: str, execution_arn: str) -> None:
        self._update(
            job_id,
            {"execution_arn": execution_arn, "updated_at": utc_now()},
            "attribute_exists(job_id)",
            {},
        )

    def set_workflow(self, job_id: str, workflow: str) -> None:
        """The state machine that runs the job from now on (an Express job handed to Standard)."""
        self._update(
            job_id, {"workflow": workflow, "updated_at": utc_now()}, "attribute_exists(job_id)", {}
        )

    def mark_running(self, job_id: str) -> JobRecord:
        """QUEUED→RUNNING (a repeat while RUNNING is allowed: preprocess retries)."""
        now = utc_now()
        ok = self._update(
            job_id,
            {"status": "RUNNING", "started_at": now, "updated_at": now},
            "#status = :queued",
            {"queued": "QUEUED"},
        )
        job = self.require(job_id)
        if not ok and job.status != "RUNNING":
            raise InvalidTransition(f"job {job_id} is {job.status}, cannot start")
        return job

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        counts: Counts,
        manifest_uri: str,
        failed_documents: list[DocumentFailure],
        error: ErrorInfo | None = None,
    ) -> tuple[JobRecord, bool]:
        """RUNNING→SUCCEEDED|PARTIAL|FAILED with results. Returns (job, changed?)."""
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"{status} is not terminal")
        now = utc_now()
        sets: dict[str, Any] = {
            "status": status,
            "counts": counts.model_dump(),
            "manifest_uri": manifest_uri,
            "failed_documents": [f.model_dump() for f in failed_documents[:MAX_FAILED_ON_RECORD]],
            "finished_at": now,
            "updated_at": now,
        }
        if error is not None:
            sets["error"] = error.model_dump()
        ok = self._update(job_id, sets, "#status = :running", {"running": "RUNNING"})
        job = self.require(job_id)
        if not ok and job.status != status:
            raise InvalidTransition(f"job {job_id} is {job.status}, cannot become {status}")
        return job, ok

    def mark_failed(
        self, job_id: str, error: ErrorInfo, counts: Counts | None = None
    ) -> tuple[JobRecord, bool]:
        """Any non-terminal→FAILED, keeping known counts. A terminal job is left as it is."""
        now = utc_now()
        sets: dict[str, Any] = {
            "status": "FAILED",
            "error": error.model_dump(),
            "finished_at": now,
            "updated_at": now,
        }
        if counts is not None:
            sets["counts"] = counts.model_dump()
        ok = self._update(
            job_id,
            sets,
            "#status IN (:queued, :running)",
            {"queued": "QUEUED", "running": "RUNNING"},
        )
        return self.require(job_id), ok

    def non_terminal_created_before(
        self, cutoff: str, statuses: tuple[str, ...] = NON_TERMINAL_STATUSES
    ) -> list[dict[str, str]]:
        """QUEUED/RUNNING jobs created before `cutoff` (ISO-8601), from the status GSI:
        `[{"job_id", "status", "created_at", "execution_arn"?}]`, oldest first per status."""
        out: list[dict[str, str]] = []
        for status in statuses:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": STATUS_INDEX,
                "KeyConditionExpression": "#status = :status AND created_at < :cutoff",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": _values(status=status, cutoff=cutoff),
            }
            while True:
                page = self.client.query(**kwargs)
                for item in page.get("Items", []):
                    out.append({k: str(_de.deserialize(v)) for k, v in item.items()})
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return out

    def record_counts(self, job_id: str, counts: Counts, batches: int | None = None) -> None:
        """Counts known so far (preprocess), and the job's batch total, while it is RUNNING."""
        sets: dict[str, Any] = {"counts": counts.model_dump(), "updated_at": utc_now()}
        if batches is not None:
            sets["progress"] = {"batches": batches, "batches_done": 0}
        self._update(job_id, sets, "#status = :running", {"running": "RUNNING"})

    def record_batch_done(self, job_id: str) -> None:
        """One more batch finished (embedded or failed) while the job RUNs: an atomic counter
        for progress. A retried step may count a batch twice; readers cap it at the total, and
        the final counts come from deliver, not from this."""
        try:
            self.client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                # ADD only works on top-level attributes: SET with arithmetic on the nested one
                UpdateExpression="SET progress.batches_done = progress.batches_done + :one",
                ConditionExpression="#status = :running AND attribute_exists(progress)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":running": {"S": "RUNNING"}},
            )
        except Exception as exc:
            if not self._is_conditional_failure(exc):
                raise

    def record_notification(self, job_id: str, webhook_result: dict[str, Any] | None) -> None:
        sets: dict[str, Any] = {"notified_at": utc_now()}
        if webhook_result is not None:
            sets["webhook_result"] = webhook_result
        self._update(job_id, sets, "attribute_exists(job_id)", {})

    def claim_notification(self, job_id: str, owner: str, now: float, lease_s: float) -> bool:
        """Take the job's notification for `lease_s` seconds: True for the one caller that may
        publish it, while it is not done (`notified_at`) and nobody else holds a live claim
        (`notify_claim`: `{owner, until}` epoch s). A claim whose holder died expires."""
        return self._conditional_update(
            job_id,
            UpdateExpression="SET #c = :claim",
            ConditionExpression=(
                "attribute_exists(job_id) AND attribute_not_exists(notified_at) "
                "AND (attribute_not_exists(#c) OR #c.#until < :now)"
            ),
            ExpressionAttributeNames={"#c": "notify_claim", "#until": "until"},
            ExpressionAttributeValues=_values(
                claim={"owner": owner, "until": Decimal(str(round(now + lease_s, 3)))},
                now=Decimal(str(round(now, 3))),
            ),
        )

    def add_retry(self, job_id: str, retry_id: str) -> bool:
        """Add `retry_id` to the job's `retries`, once: a repeat fails the condition (a no-op).
        Returns True when it was added."""
        try:
            self.client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #r = list_append(if_not_exists(#r, :empty), :new)",
                ConditionExpression="attribute_exists(job_id) AND NOT contains(#r, :id)",
                ExpressionAttributeNames={"#r": "retries"},
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":new": {"L": [{"S": retry_id}]},
                    ":id": {"S": retry_id},
                },
            )
        except Exception as exc:
            if self._is_conditional_failure(exc):
                return False
            raise
        return True

    def _conditional_update(self, job_id: str, **request: Any) -> bool:
        """One update_item on the job's item; False when its condition did not hold."""
        try:
            self.client.update_item(TableName=self._table, Key={"job_id": {"S": job_id}}, **request)
        except Exception as exc:
            if self._is_conditional_failure(exc):
                return False
            raise
        return True

    def start_webhook(self, job_id: str, outcome: WebhookOutcome) -> WebhookOutcome | None:
        """Store the job's webhook outcome unless it has one: a repeat keeps the first. Returns
        the stored outcome (None when the job does not exist)."""
        self._conditional_update(
            job_id,
            UpdateExpression="SET #w = :w",
            ConditionExpression="attribute_exists(job_id) AND attribute_not_exists(#w)",
            ExpressionAttributeNames={"#w": "webhook"},
            ExpressionAttributeValues=_values(w=outcome.model_dump(exclude_none=True)),
        )
        job = self.get(job_id)
        return job.webhook if job is not None else None

    def record_webhook_attempt(self, job_id: str, outcome: WebhookOutcome) -> bool:
        """Store the outcome of attempt `outcome.attempts`, iff the stored one is still pending
        after the attempt before it (compare-and-set): of two consumers of the same attempt,
        one writes. Returns True when this write happened."""
        return self._conditional_update(
            job_id,
            UpdateExpression="SET #w = :w",
            ConditionExpression="#w.#state = :pending AND #w.#attempts = :previous",
            ExpressionAttributeNames={"#w": "webhook", "#state": "state", "#attempts": "attempts"},
            ExpressionAttributeValues=_values(
                w=outcome.model_dump(exclude_none=True),
                pending="pending",
                previous=outcome.attempts - 1,
            ),
        )

    def mark_webhook_queued(self, job_id: str, attempt: int) -> bool:
        """Note that attempt `attempt` is on the webhook queue (the number only ever rises).
        Returns True when this call raised it."""
        return self._conditional_update(
            job_id,
            UpdateExpression="SET #w.#queued = :attempt",
            ConditionExpression="#w.#queued < :attempt",
            ExpressionAttributeNames={"#w": "webhook", "#queued": "queued_attempt"},
            ExpressionAttributeValues=_values(attempt=attempt),
        )
