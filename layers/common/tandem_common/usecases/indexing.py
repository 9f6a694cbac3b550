"""Indexing into Amazon S3 Vectors: each batch's chunks, per Map child, and the per-document
bookkeeping that lets a document's vectors be replaced, shrunk and deleted.

Where it runs: in collect (`collect.collect_into_shard`), once per batch, after the output checks
and before the shard's done mark, so index writes scale with the Map and no Lambda holds more
than one batch. For batch N:

1. The dimension check: the index's dimension (GetIndex, cached per container) must be the
   output's, else the batch fails naming both numbers, before anything is written.
2. One vector per chunk under `{document_id}#{chunk_index}` (a retry or a re-run overwrites it),
   metadata `document_id`, `job_id`, `chunk_index` (filterable) and `text` (not filterable). A
   chunk that cannot be indexed (key over 1,024 bytes, metadata over 40 KB or 2 KB filterable)
   fails its document: the document's rows are left out of the put and its reason goes to
   `batches/unindexed/batch-N.jsonl`, which deliver reads.
3. PutVectors, at most 500 vectors and 20 MiB a call, paced (`adapters.vectors.WritePacer`).
4. For each document whose last chunk is in this batch (every document of the batch but its last
   one, and that one too unless batch N+1 begins with it), its chunk count c is its last
   chunk_index + 1: the keys c.. of its previous version (the documents table's count) are
   deleted, then c is recorded. Deleting before recording makes a re-run redo the deletes.

A call that still fails after the SDK's retries fails the batch ("batch not indexed: ..."),
marked `index_written`: some of its vectors may be in the index.

Deliver (`Indexer.unindex`): a failed document that this job may have written (one of its batches
succeeded, or failed while writing the index) is removed from the index: every key below the
larger of its recorded and its new chunk count, then its record. So the index holds each
document whole, in one version, or not at all. A failed document whose batches all failed
before indexing (the endpoint failed them) was never touched, and keeps its previous version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tandem_common.adapters.documents import DocumentStore
from tandem_common.adapters.storage import Storage
from tandem_common.adapters.vectors import (
    MAX_FILTERABLE_METADATA_BYTES,
    MAX_KEY_BYTES,
    MAX_METADATA_BYTES,
    VectorIndex,
    WritePacer,
)
from tandem_common.contracts import VECTOR_TEXT_KEY, JobPaths, vector_key
from tandem_common.errors import VectorIndexError
from tandem_common.settings import Settings


@dataclass(frozen=True)
class IndexFailure:
    reason: str
    index_written: bool  # some of the batch's vectors may be in the index


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def chunk_vector(
    row: dict[str, Any], vector: list[float], text: str, job_id: str
) -> tuple[dict[str, Any] | None, str | None]:
    """(PutVectors entry, None), or (None, why this chunk cannot be indexed)."""
    doc_id, chunk_index = str(row["document_id"]), int(row["chunk_index"])
    key = vector_key(doc_id, chunk_index)
    if len(key.encode()) > MAX_KEY_BYTES:
        return None, (
            f"chunk {chunk_index} cannot be indexed: its vector key (document id + '#' + chunk "
            f"index) is {len(key.encode())} bytes, S3 Vectors allows {MAX_KEY_BYTES}"
        )
    filterable = {"document_id": doc_id, "job_id": job_id, "chunk_index": chunk_index}
    metadata = {**filterable, VECTOR_TEXT_KEY: text}
    if _size(filterable) > MAX_FILTERABLE_METADATA_BYTES:
        return None, (
            f"chunk {chunk_index} cannot be indexed: its filterable metadata is "
            f"{_size(filterable)} bytes, S3 Vectors allows {MAX_FILTERABLE_METADATA_BYTES}"
        )
    if _size(metadata) > MAX_METADATA_BYTES:
        return None, (
            f"chunk {chunk_index} cannot be indexed: its text and metadata are "
            f"{_size(metadata)} bytes, S3 Vectors allows {MAX_METADATA_BYTES} per vector"
        )
    return {"key": key, "data": {"float32": vector}, "metadata": metadata}, None


def ending_documents(
    rows: list[dict[str, Any]], next_first: dict[str, Any] | None
) -> dict[str, int]:
    """`{document_id: chunks}` of the documents whose last chunk is among `rows` (one batch's
    rows, in placement order); `next_first` is the next batch's first row (None: no next)."""
    last: dict[str, int] = {}
    for row in rows:
        last[row["document_id"]] = max(last.get(row["document_id"], -1), int(row["chunk_index"]))
    if rows and next_first is not None and next_first["document_id"] == rows[-1]["document_id"]:
        last.pop(rows[-1]["document_id"])  # it goes on in the next batch
    return {doc_id: index + 1 for doc_id, index in last.items()}


class Indexer:
    """The vector index and the documents table, as collect, deliver and the api use them."""

    def __init__(self, index: VectorIndex, documents: DocumentStore) -> None:
        self.index = index
        self.documents = documents

    @classmethod
    def from_settings(cls, settings: Settings, writers: int | None = None) -> Indexer | None:
        """One per container (its pacer is the container's); None when indexing is off. The
        Map runs up to MapMaxConcurrency (the default `writers`) collect steps at once: each
        paces to its share of VECTOR_WRITE_RATE."""
        vectors = settings.vectors
        if not vectors.enabled:
            return None
        pacer = WritePacer(vectors.write_rate, writers or settings.chunking.map_max_concurrency)
        return cls(VectorIndex(vectors.index_arn, pacer), DocumentStore(vectors.documents_table))

    def index_batch(
        self,
        paths: JobPaths,
        batch: int,
        rows: list[dict[str, Any]],
        dims: int,
        values: Any,
        storage: Storage,
    ) -> IndexFailure | None:
        """Put batch `batch`'s chunks into the index and record the documents that end in it;
        `values` is the batch output's flat float32 rows (`dims` wide). None when done."""
        try:
            expected = self.index.dimension()
        except VectorIndexError as exc:
            return IndexFailure(f"batch not indexed: {exc.message}", index_written=False)
        if dims != expected:
            return IndexFailure(
                f"batch not indexed: the model's vectors have {dims} dimensions but the vector "
                f"index holds {expected}-dimensional vectors (a model of another size?)",
                index_written=False,
            )
        texts = [r["text"] for r in storage.iter_jsonl(paths.uri(paths.batch_inputs(batch)))]
        entries: list[dict[str, Any]] = []
        unindexed: dict[str, str] = {}
        for row in rows:
            at = int(row["row"]) * dims
            entry, problem = chunk_vector(
                row, list(values[at : at + dims]), texts[int(row["row"])], paths.job_id
            )
            if problem is not None:
                unindexed.setdefault(str(row["document_id"]), problem)
            elif entry is not None:
                entries.append(entry)
        entries = [e for e in entries if e["metadata"]["document_id"] not in unindexed]
        raw = storage.get_bytes_if_exists(paths.uri(paths.batch_rows(batch + 1)))
        next_first = json.loads(raw.split(b"\n", 1)[0]) if raw else None
        ending = {
            doc_id: chunks
            for doc_id, chunks in ending_documents(rows, next_first).items()
            if doc_id not in unindexed
        }
        try:
            self.index.put(entries)
            previous = self.documents.chunk_counts(ending)
            self.index.delete(
                [vector_key(d, i) for d, c in ending.items() for i in range(c, previous.get(d, 0))]
            )
            self.documents.record(ending, paths.job_id)
        except VectorIndexError as exc:
            return IndexFailure(f"batch not indexed: {exc.message}", index_written=True)
        if unindexed:
            storage.put_jsonl(
                paths.uri(paths.batch_unindexed(batch)),
                [{"id": doc_id, "reason": reason} for doc_id, reason in unindexed.items()],
            )
        return None

    def unindex(self, documents: dict[str, int]) -> int:
        """Remove these `{document_id: new chunk count}` from the index (their new version
        failed): every key below max(recorded, new) count, then the record. Returns the number
        of keys deleted."""
        if not documents:
            return 0
        recorded = self.documents.chunk_counts(documents)
        keys = [
            vector_key(doc_id, i)
            for doc_id, chunks in documents.items()
            for i in range(max(chunks, recorded.get(doc_id, 0)))
        ]
        self.index.delete(keys)
        self.documents.forget(documents)
        return len(keys)
