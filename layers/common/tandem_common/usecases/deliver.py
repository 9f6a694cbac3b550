"""Deliver: the accounting after the Map, in bounded memory and time whatever the job's size.

The vectors are already in S3: each Map child wrote its batch's result shard (collect.py).
Deliver trusts S3, not the Map's results: a batch is done iff its shard exists; a batch with no
shard and no failure record is collected here (its output may exist though its child's collect
step failed); otherwise it failed with the reason its child recorded, or the reason given in
`batch_results`, or "batch output missing". Documents are all-or-nothing: a document with a
chunk in a failed batch fails with that batch's reason, and its rows are taken out of the other
shards it reached (only those few shards are rewritten). Then it writes `result/documents.jsonl`,
`result/failures.jsonl`, `result/shards.jsonl` and a small manifest, finishes the job and tells
the world. It streams the per-document and per-batch lists, so memory does not grow with the
job. Re-running it gives the same files and the same record (the terminal write is a no-op the
second time).

With indexing on, the Map children indexed their batches (indexing.py); a document also fails
when a batch could not index one of its chunks (`batches/unindexed/`), and a failed document
that this job may have written to the vector index is removed from it (`Indexer.unindex`, in
groups of `UNINDEX_GROUP`), so the index never holds part of a version that failed.
"""

from __future__ import annotations

import json
from array import array
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.storage import JsonlUpload, Storage
from tandem_common.contracts import JobPaths, failure_class, s3_uri
from tandem_common.models import (
    BatchResult,
    Counts,
    DeliverResult,
    DocumentFailure,
    ErrorInfo,
    JobStatus,
)
from tandem_common.observability import logger
from tandem_common.settings import Settings
from tandem_common.text.npy import NpyError, decode_f32, encode_f32, shape_and_offset
from tandem_common.usecases.collect import collect_into_shard
from tandem_common.usecases.indexing import Indexer
from tandem_common.usecases.notifications import notify_job_finished, record_job_end

COLLECT_WORKERS = 16
UNINDEX_GROUP = 1000  # failed documents removed from the vector index per round of calls


@dataclass
class BatchState:
    index: int
    rows: int  # chunk rows placed in the batch (its shard's rows before any repair)
    reason: str | None = None  # set when the batch failed
    index_written: bool = False  # it failed while writing the vector index

    @property
    def touched_index(self) -> bool:
        """Whether this batch may have written vectors (it succeeded, or failed midway)."""
        return self.reason is None or self.index_written


def _indexes(storage: Storage, prefix_uri: str, suffix: str) -> set[int]:
    out = set()
    for key in storage.list_keys(prefix_uri):
        index = JobPaths.index_of(key)
        if index is not None and key.endswith(suffix):
            out.add(index)
    return out


def settle_batches(
    paths: JobPaths,
    batch_results: list[BatchResult],
    storage: Storage,
    indexer: Indexer | None = None,
) -> dict[int, BatchState]:
    """Every batch's outcome: shard written, or failed with a reason."""
    batches = {
        int(b["index"]): BatchState(int(b["index"]), int(b["rows"]))
        for b in storage.iter_jsonl(paths.uri(paths.batch_list))
    }
    sharded = _indexes(storage, paths.uri(paths.shard_prefix), ".jsonl")
    failed = _indexes(storage, paths.uri(paths.batch_failed_prefix), ".json")
    given = {r.index: r for r in batch_results}
    missing = [i for i in batches if i not in sharded and i not in failed]

    def collect(index: int) -> tuple[int, str | None]:
        result = given.get(index)
        error = result.error if result is not None and not result.ok else None
        return index, collect_into_shard(paths, index, error, storage, indexer).reason

    with ThreadPoolExecutor(max_workers=COLLECT_WORKERS) as pool:
        for index, reason in pool.map(collect, missing):
            if reason is not None:
                failed.add(index)
    for index in failed - sharded:
        record = storage.get_json(paths.uri(paths.batch_failed(index)))
        batches[index].reason = str(record["reason"])
        batches[index].index_written = bool(record.get("index_written"))
    return batches


def unindexed_documents(paths: JobPaths, storage: Storage) -> dict[str, str]:
    """Documents a batch could not put into the vector index, with the reason."""
    out: dict[str, str] = {}
    for key in storage.list_keys(paths.uri(paths.batch_unindexed_prefix)):
        for row in storage.iter_jsonl(s3_uri(paths.bucket, key)):
            out.setdefault(str(row["id"]), str(row["reason"]))
    return out


def _strip_documents(paths: JobPaths, index: int, documents: set[str], storage: Storage) -> int:
    """Take `documents`' rows out of shard `index` (their document failed elsewhere); returns
    the rows left. Deletes a shard left empty."""
    jsonl_uri, npy_uri = paths.uri(paths.shard_jsonl(index)), paths.uri(paths.shard_npy(index))
    lines = list(storage.iter_lines(jsonl_uri))
    try:
        rows, dims, values = decode_f32(storage.get_bytes(npy_uri))
    except NpyError as exc:
        raise RuntimeError(f"shard {index} is unreadable: {exc}") from exc
    keep = [
        i for i, line in enumerate(lines) if line.strip() and _document_of(line) not in documents
    ]
    if len(keep) == rows:
        return rows
    if not keep:
        storage.delete(jsonl_uri)
        storage.delete(npy_uri)
        return 0
    flat = array("f")
    for i in keep:
        flat.extend(values[i * dims : (i + 1) * dims])
    storage.put_bytes(npy_uri, encode_f32(len(keep), dims, flat), "application/octet-stream")
    storage.put_bytes(jsonl_uri, b"".join(lines[i] + b"\n" for i in keep), "application/x-ndjson")
    return len(keep)


def _document_of(line: bytes) -> str:
    return str(json.loads(line)["document_id"])


def _dims(paths: JobPaths, shards: list[int], storage: Storage) -> int:
    """The vectors' width, from the first shard's .npy header."""
    if not shards:
        return 0
    head = storage.get_range(paths.uri(paths.shard_npy(shards[0])), 0, 255)
    return shape_and_offset(head)[1]


def deliver_job(
    job_id: str,
    batch_results: list[BatchResult],
    settings: Settings,
    store: JobStore,
    storage: Storage,
    indexer: Indexer | None = None,
) -> DeliverResult:
    job = store.require(job_id)
    paths = JobPaths(settings.resources.data_bucket, job_id)
    batches = settle_batches(paths, batch_results, storage, indexer)
    unindexed = unindexed_documents(paths, storage) if indexer is not None else {}
    shard_rows = {i: b.rows for i, b in batches.items() if b.reason is None}
    strip: dict[int, set[str]] = defaultdict(set)
    documents = chunks = embedded = failed = removed = 0
    first_failures: list[dict[str, Any]] = []
    failed_by_class: Counter[str] = Counter()
    to_unindex: dict[str, int] = {}  # failed documents this job may have written to the index

    def unindex() -> None:
        nonlocal removed
        if indexer is not None and to_unindex:
            removed += indexer.unindex(to_unindex)
        to_unindex.clear()

    def fail(failures: JsonlUpload, doc_id: str, reason: str) -> None:
        nonlocal failed
        failed += 1
        failed_by_class[failure_class(reason)] += 1
        failures.write({"id": doc_id, "reason": reason})
        if len(first_failures) < 100:
            first_failures.append({"id": doc_id, "reason": reason})

    with (
        JsonlUpload(storage, paths.uri(paths.result_documents)) as doc_out,
        JsonlUpload(storage, paths.uri(paths.result_failures)) as failures,
    ):
        for doc in storage.iter_jsonl(paths.uri(paths.batch_documents)):
            documents += 1
            chunks += doc["chunks"]
            span = range(doc["first_batch"], doc["last_batch"] + 1)
            reason = next((batches[i].reason for i in span if batches[i].reason), None)
            reason = reason or unindexed.get(doc["id"])
            if reason is None:
                embedded += doc["chunks"]
                doc_out.write({"id": doc["id"], "chunks": doc["chunks"], "status": "SUCCEEDED"})
                continue
            doc_out.write({"id": doc["id"], "chunks": doc["chunks"], "status": "FAILED"})
            fail(failures, doc["id"], reason)
            for i in span:
                if batches[i].reason is None:
                    strip[i].add(doc["id"])
            if any(batches[i].touched_index for i in span):
                to_unindex[doc["id"]] = doc["chunks"]
                if len(to_unindex) >= UNINDEX_GROUP:
                    unindex()
        unindex()
        for rejected in storage.iter_jsonl(paths.uri(paths.document_failures)):
            documents += 1
            doc_out.write({"id": rejected["id"], "chunks": 0, "status": "FAILED"})
            fail(failures, rejected["id"], rejected["reason"])

    for index, doc_ids in sorted(strip.items()):
        shard_rows[index] = _strip_documents(paths, index, doc_ids, storage)
    shards = sorted(i for i, rows in shard_rows.items() if rows)
    dims = _dims(paths, shards, storage)
    with JsonlUpload(storage, paths.uri(paths.result_shards)) as shard_index:
        for i in shards:
            shard_index.write(
                {
                    "index": i,
                    "rows": shard_rows[i],
                    "vectors_jsonl": paths.uri(paths.shard_jsonl(i)),
                    "vectors_npy": paths.uri(paths.shard_npy(i)),
                }
            )

    status: JobStatus = "FAILED" if not embedded else ("PARTIAL" if failed else "SUCCEEDED")
    counts = Counts(documents=documents, chunks=chunks, embedded=embedded, failed=failed)
    failed_batches = [
        {"index": i, "reason": batches[i].reason} for i in sorted(batches) if batches[i].reason
    ]
    result_manifest_uri = paths.uri(paths.result_manifest)
    storage.put_json(
        result_manifest_uri,
        {
            "job_id": job_id,
            "status": status,
            "endpoint": settings.resources.endpoint_name,  # the model behind it is a plug-in
            "dims": dims,
            "counts": counts.model_dump(),
            "files": {
                "documents": paths.uri(paths.result_documents),
                "failures": paths.uri(paths.result_failures),
                "shards": paths.uri(paths.result_shards),
            },
            "shards": {"count": len(shards), "rows": embedded},
            "failed_batches": failed_batches[:100],
            "failed_batch_count": len(failed_batches),
        },
    )
    error = (
        ErrorInfo(code="no_vectors", message="no document produced vectors; see failed_documents")
        if status == "FAILED"
        else None
    )
    job, changed = store.finish(
        job_id,
        status,
        counts,
        result_manifest_uri,
        [DocumentFailure.model_validate(f) for f in first_failures],
        error,
    )
    if changed:
        record_job_end(status, embedded, failed_by_class)
    logger.info(
        "delivered",
        extra={
            "status": status,
            **counts.model_dump(),
            "shards": len(shards),
            "repaired_shards": len(strip),
            "unindexed_vectors": removed,
            "changed": changed,
        },
    )
    notify_job_finished(job, settings, store)
    return DeliverResult(
        job_id=job_id, status=job.status, counts=job.counts, manifest_uri=result_manifest_uri
    )
