"""The documents table (template: DocumentsTable): what the vector index holds per document.

pk `document_id` → `chunks` (its indexed version has the keys `{id}#0` .. `{id}#{chunks-1}`),
`job_id` (the job that indexed it), `updated_at`. Collect writes it for the documents whose last
chunk is in its batch, deliver and `DELETE /v1/documents/{id}` remove it. Batched calls (100 keys
per BatchGetItem, 25 writes per BatchWriteItem); what DynamoDB leaves unprocessed is sent again
with a short backoff.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tandem_common.adapters import aws
from tandem_common.adapters.jobs import utc_now
from tandem_common.errors import VectorIndexBusy, VectorIndexError

GET_BATCH = 100
WRITE_BATCH = 25
UNPROCESSED_ROUNDS = 8


def _chunks_of(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DocumentStore:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = table_name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.dynamodb()

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(self.client, operation)(**params)
        except (ClientError, BotoCoreError) as exc:
            raise VectorIndexError(
                f"documents table {operation} failed: {aws.error_code(exc) or type(exc).__name__}"
            ) from exc

    def chunk_counts(self, document_ids: Iterable[str]) -> dict[str, int]:
        """`{document_id: chunks}` of the given documents that the index holds."""
        out: dict[str, int] = {}
        for part in _chunks_of(list(dict.fromkeys(document_ids)), GET_BATCH):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"document_id": {"S": d}} for d in part],
                    "ProjectionExpression": "document_id, chunks",
                    "ConsistentRead": True,
                }
            }
            for round_ in range(UNPROCESSED_ROUNDS):
                answer = self._call("batch_get_item", RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table, []):
                    out[item["document_id"]["S"]] = int(item["chunks"]["N"])
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**round_, 2.0))
            else:
                raise VectorIndexBusy("documents table: BatchGetItem left keys unprocessed")
        return out

    def _write(self, requests: list[dict[str, Any]]) -> None:
        for part in _chunks_of(requests, WRITE_BATCH):
            pending: dict[str, Any] = {self.table: part}
            for round_ in range(UNPROCESSED_ROUNDS):
                pending = self._call("batch_write_item", RequestItems=pending).get(
                    "UnprocessedItems"
                )
                if not pending:
                    break
                time.sleep(min(0.05 * 2**round_, 2.0))
            else:
                raise VectorIndexBusy("documents table: BatchWriteItem left writes unprocessed")

    def record(self, chunks: dict[str, int], job_id: str) -> None:
        """Each document's indexed chunk count, as written by `job_id`."""
        now = utc_now()
        self._write(
            [
                {
                    "PutRequest": {
                        "Item": {
                            "document_id": {"S": doc_id},
                            "chunks": {"N": str(count)},
                            "job_id": {"S": job_id},
                            "updated_at": {"S": now},
                        }
                    }
                }
                for doc_id, count in chunks.items()
            ]
        )

    def forget(self, document_ids: Iterable[str]) -> None:
        self._write(
            [
                {"DeleteRequest": {"Key": {"document_id": {"S": doc_id}}}}
                for doc_id in dict.fromkeys(document_ids)
            ]
        )
