"""The inferences table (EndpointMode=async): one item per try of a batch, keyed by its
InferenceId, holding the Map task's token until SageMaker's notification (or the sweep) closes it.

Every change is a conditional write: a try is recorded once (a re-run of the same submit with
the same token is allowed), and closed once (`pending` -> `succeeded|failed|abandoned`), so a
duplicate notification finds it closed and does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from tandem_common.adapters import aws
from tandem_common.adapters.jobs import to_plain, utc_now
from tandem_common.models import InferenceRecord, InferenceState

_ser = TypeSerializer()
_de = TypeDeserializer()


class InferenceConflict(Exception):
    """The inference id is recorded already, with another task token."""


class InferenceStore:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.dynamodb()

    def _key(self, inference_id: str) -> dict[str, Any]:
        return {"inference_id": {"S": inference_id}}

    def record(self, record: InferenceRecord) -> None:
        """Store a new try (pending); InferenceConflict if the id holds another token."""
        item = {k: _ser.serialize(v) for k, v in record.model_dump().items() if v is not None}
        try:
            self.client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(inference_id) OR task_token = :t",
                ExpressionAttributeValues={":t": {"S": record.task_token}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise InferenceConflict(record.inference_id) from None

    def set_locations(self, inference_id: str, output: str, failure: str | None) -> None:
        """Where SageMaker will write the result (InvokeEndpointAsync's answer)."""
        names = {"#o": "output_location"}
        values: dict[str, Any] = {":o": {"S": output}}
        update = "SET #o = :o"
        if failure:
            names["#f"] = "failure_location"
            values[":f"] = {"S": failure}
            update += ", #f = :f"
        self.client.update_item(
            TableName=self._table,
            Key=self._key(inference_id),
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def get(self, inference_id: str) -> InferenceRecord | None:
        item = self.client.get_item(
            TableName=self._table, Key=self._key(inference_id), ConsistentRead=True
        ).get("Item")
        return None if not item else _record(item)

    def close(
        self,
        inference_id: str,
        state: InferenceState,
        over: tuple[InferenceState, ...] = ("pending",),
    ) -> bool:
        """`over` (pending) -> `state`; True if this call closed it, False if it was closed
        already. The one callback Step Functions accepted for a try closes it over "abandoned"
        too: a duplicate whose callback was refused may have marked it so a moment before."""
        allowed = {f":over{i}": {"S": s} for i, s in enumerate(over)}
        try:
            self.client.update_item(
                TableName=self._table,
                Key=self._key(inference_id),
                UpdateExpression="SET #s = :s, closed_at = :now",
                ConditionExpression=f"#s IN ({', '.join(allowed)})",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":s": {"S": state}, ":now": {"S": utc_now()}, **allowed},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def pending(self) -> Iterator[InferenceRecord]:
        """Every try still pending (the sweep's work list: the table holds recent tries only,
        expiring after a day, so a filtered scan stays small)."""
        paginator = self.client.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self._table,
            FilterExpression="#s = :pending",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":pending": {"S": "pending"}},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                yield _record(item)


def _record(item: dict[str, Any]) -> InferenceRecord:
    return InferenceRecord.model_validate(
        to_plain({k: _de.deserialize(v) for k, v in item.items()})
    )
