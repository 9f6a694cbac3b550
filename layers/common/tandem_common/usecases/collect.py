"""Collect (the last step of each Map child): a batch's endpoint output → its result shard.

Runs once per batch, in parallel across the Map's children, so a job's result is written where
it scales and no single Lambda ever holds more than one batch. For batch N it reads
`batches/rows-N.jsonl` (every chunk of the batch and its output row) and `outputs/batch-N.npy`
(the endpoint's float32 rows) and writes `result/shards/vectors-N.npy` then
`result/shards/vectors-N.jsonl` (the JSONL is the shard's "done" mark). When the endpoint call
failed (the child passes its error), or the output is missing or wrong, it writes the batch's
failure record `batches/failed/batch-N.json` with the reason instead. With indexing on, the
batch's chunks go into the vector index before the shard is written (`indexing.py`); a batch
that cannot be indexed fails with the reason. Re-running it is a no-op once the shard exists,
and otherwise writes the same keys again, so retries and at-least-once children are safe.

The batch's metrics are emitted by the call that wrote its shard or failure record: its latency
(from the InvokeEndpoint state's start, `timing.sent_at`, to its shard written), the container
5xx retries the child made (`attempt`), and whether the endpoint throttled it to failure. The
Retry field's own retries (throttling, 503s) happen inside Step Functions and reach no code:
the dashboard shows SageMaker's invocation errors for those.
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.storage import Storage
from tandem_common.contracts import JobPaths
from tandem_common.models import CollectInput, CollectResult, StepError
from tandem_common.observability import (
    BATCH_LATENCY,
    ENDPOINT_RETRIES,
    ENDPOINT_THROTTLES,
    emit,
    logger,
)
from tandem_common.settings import Settings
from tandem_common.text.npy import NpyError, decode_f32, encode_f32
from tandem_common.usecases.indexing import Indexer

NPY = "application/octet-stream"
JSONL = "application/x-ndjson"


def failure_reason(error: StepError) -> str:
    """A failed endpoint call, as the reason its batch's documents fail with."""
    cause = (error.Cause or "")[:300]
    return f"batch failed: {error.Error}" + (f": {cause}" if cause else "")


def _f32(x: float) -> float:
    return float(f"{x:.9g}")  # the shortest decimal that reads back as the same float32


def build_shard(rows: list[dict[str, Any]], npy: bytes) -> tuple[bytes, bytes, int, int]:
    """(shard JSONL, shard .npy, rows, dims) from a batch's rows and its endpoint output;
    raises ValueError with the failure reason when the output does not fit the batch."""
    unique = max((r["row"] for r in rows), default=-1) + 1
    try:
        out_rows, dims, values = decode_f32(npy)
    except NpyError as exc:
        raise ValueError(f"batch output unreadable: {exc}") from None
    if out_rows != unique:
        raise ValueError(f"batch output has {out_rows}x{dims}, expected {unique} rows")
    if not all(map(math.isfinite, values)):
        raise ValueError("batch output has non-finite values")
    flat = array("f")
    lines = []
    for r in rows:
        vector = values[r["row"] * dims : (r["row"] + 1) * dims]
        flat.extend(vector)
        line = {
            "chunk_id": r["chunk_id"],
            "document_id": r["document_id"],
            "chunk_index": r["chunk_index"],
            "embedding": [_f32(v) for v in vector],
        }
        lines.append(json.dumps(line, ensure_ascii=False))
    jsonl = "".join(line + "\n" for line in lines).encode()
    return jsonl, encode_f32(len(rows), dims, flat), len(rows), dims


def record_batch_failure(
    paths: JobPaths, index: int, reason: str, storage: Storage, index_written: bool = False
) -> None:
    record: dict[str, Any] = {"index": index, "reason": reason}
    if index_written:  # it failed while writing the vector index: some vectors may be there
        record["index_written"] = True
    storage.put_json(paths.uri(paths.batch_failed(index)), record)


def collect_batch(
    request: CollectInput,
    settings: Settings,
    store: JobStore,
    storage: Storage,
    indexer: Indexer | None = None,
    clock: Callable[[], float] = time.time,
) -> CollectResult:
    paths = JobPaths(settings.resources.data_bucket, request.job_id)
    result = collect_into_shard(paths, request.index, request.error, storage, indexer)
    store.record_batch_done(request.job_id)
    if result.written:
        batch_metrics(request, result, clock())
    if not result.ok:
        logger.info("batch failed", extra={"batch": request.index, "reason": result.reason})
    return result


def is_throttling(error: StepError) -> bool:
    return "Throttl" in f"{error.Error} {error.Cause or ''}"


def batch_metrics(request: CollectInput, result: CollectResult, now: float) -> None:
    if request.attempt:
        emit(ENDPOINT_RETRIES, request.attempt)
    if request.error is not None and not result.ok and is_throttling(request.error):
        emit(ENDPOINT_THROTTLES)
    if result.ok and request.timing is not None:
        sent = datetime.fromisoformat(request.timing.sent_at.replace("Z", "+00:00"))
        emit(BATCH_LATENCY, max(0.0, round((now - sent.timestamp()) * 1000, 1)))


def collect_into_shard(
    paths: JobPaths,
    index: int,
    error: StepError | None,
    storage: Storage,
    indexer: Indexer | None = None,
) -> CollectResult:
    """Write batch `index`'s shard (indexing its chunks first when an `indexer` is given), or
    its failure record; a no-op when the shard already exists."""
    shard_jsonl = paths.uri(paths.shard_jsonl(index))
    if storage.exists(shard_jsonl):
        return CollectResult(index=index, ok=True)
    # S3 is the truth: an output that is there counts even if the call reported an error (a
    # timeout after the endpoint wrote it, say); the error is the reason only when it is not.
    npy = storage.get_bytes_if_exists(paths.uri(paths.batch_outputs(index)))
    if npy is None:
        reason = failure_reason(error) if error is not None else "batch output missing"
    else:
        rows = storage.get_jsonl(paths.uri(paths.batch_rows(index)))
        try:
            jsonl, matrix, count, dims = build_shard(rows, npy)
        except ValueError as exc:
            reason = str(exc)
        else:
            failure = (
                None
                if indexer is None
                else indexer.index_batch(paths, index, rows, dims, decode_f32(npy)[2], storage)
            )
            if failure is not None:
                record_batch_failure(paths, index, failure.reason, storage, failure.index_written)
                return CollectResult(index=index, ok=False, reason=failure.reason, written=True)
            storage.put_bytes(paths.uri(paths.shard_npy(index)), matrix, NPY)
            storage.put_bytes(shard_jsonl, jsonl, JSONL)
            return CollectResult(index=index, ok=True, rows=count, written=True)
    record_batch_failure(paths, index, reason, storage)
    return CollectResult(index=index, ok=False, reason=reason, written=True)
