"""Deliver: merge batch outputs into the result artefacts and finish the job.

Trusts S3, not the Map results: a batch is done iff its .npy exists with the right row count;
`batch_results` only supply failure reasons. Documents are all-or-nothing: a document with a
chunk in a failed batch is failed with that batch's reason. Re-running gives the same files
and the same record (the terminal write is a no-op the second time).
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.storage import Storage
from tandem_common.contracts import JobPaths
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
from tandem_common.text.npy import NpyError, decode_f32, encode_f32
from tandem_common.usecases.notifications import notify_job_finished


@dataclass
class BatchOutput:
    cols: int
    values: array


def _reason(result: BatchResult | None, fallback: str) -> str:
    if result is None or result.error is None:
        return fallback
    cause = (result.error.Cause or "")[:300]
    return f"batch failed: {result.error.Error}" + (f": {cause}" if cause else "")


def load_batches(
    manifest: dict[str, Any],
    expected_rows: dict[int, int],
    results: dict[int, BatchResult],
    storage: Storage,
) -> tuple[dict[int, BatchOutput], dict[int, str]]:
    """Read every batch's .npy; returns (ok outputs, failure reason per failed batch)."""
    ok: dict[int, BatchOutput] = {}
    failed: dict[int, str] = {}
    dims: int | None = None
    for ref in manifest["batches"]:
        index = int(ref["index"])
        data = storage.get_bytes_if_exists(ref["outputs_uri"])
        if data is None:
            failed[index] = _reason(results.get(index), "batch output missing")
            continue
        try:
            rows, cols, values = decode_f32(data)
        except NpyError as exc:
            failed[index] = f"batch output unreadable: {exc}"
            continue
        if rows != expected_rows.get(index, 0) or (dims is not None and cols != dims):
            failed[index] = (
                f"batch output has {rows}x{cols}, expected {expected_rows.get(index, 0)} rows"
            )
            continue
        dims = cols
        ok[index] = BatchOutput(cols, values)
    return ok, failed


def _f32(x: float) -> float:
    return float(f"{x:.9g}")


def deliver_job(
    job_id: str,
    batch_results: list[BatchResult],
    settings: Settings,
    store: JobStore,
    storage: Storage,
) -> DeliverResult:
    job = store.require(job_id)
    paths = JobPaths(settings.resources.data_bucket, job_id)
    manifest = storage.get_json(paths.uri(paths.batch_manifest))
    chunk_rows: list[dict[str, Any]] = storage.get_jsonl(paths.uri(paths.chunks))
    failures = [
        DocumentFailure.model_validate(r)
        for r in storage.get_jsonl(paths.uri(paths.document_failures))
    ]

    expected_rows: dict[int, int] = defaultdict(int)
    for row in chunk_rows:
        expected_rows[row["batch"]] = max(expected_rows[row["batch"]], row["row"] + 1)
    outputs, failed_batches = load_batches(
        manifest, expected_rows, {r.index: r for r in batch_results}, storage
    )

    by_document: dict[str, list[dict[str, Any]]] = {}
    for row in chunk_rows:
        by_document.setdefault(row["document_id"], []).append(row)
    documents: list[dict[str, Any]] = []
    vectors: list[dict[str, Any]] = []
    flat = array("f")
    dims = next(iter(outputs.values())).cols if outputs else 0
    for document_id, rows in by_document.items():
        bad = next((failed_batches[r["batch"]] for r in rows if r["batch"] in failed_batches), None)
        if bad is not None:
            failures.append(DocumentFailure(id=document_id, reason=bad))
            documents.append({"id": document_id, "chunks": len(rows), "status": "FAILED"})
            continue
        documents.append({"id": document_id, "chunks": len(rows), "status": "SUCCEEDED"})
        for r in rows:
            out = outputs[r["batch"]]
            vector = out.values[r["row"] * dims : (r["row"] + 1) * dims]
            flat.extend(vector)
            vectors.append(
                {
                    "chunk_id": r["chunk_id"],
                    "document_id": document_id,
                    "chunk_index": r["chunk_index"],
                    "embedding": [_f32(v) for v in vector],
                }
            )
    for failure in failures:
        if failure.id not in by_document:
            documents.append({"id": failure.id, "chunks": 0, "status": "FAILED"})

    status: JobStatus = "FAILED" if not vectors else ("PARTIAL" if failures else "SUCCEEDED")
    counts = Counts(
        documents=len(documents),
        chunks=len(chunk_rows),
        embedded=len(vectors),
        failed=len(failures),
    )
    result_manifest_uri = paths.uri(paths.result_manifest)
    storage.put_jsonl(paths.uri(paths.result_vectors_jsonl), vectors)
    storage.put_bytes(
        paths.uri(paths.result_vectors_npy),
        encode_f32(len(vectors), dims, flat),
        "application/octet-stream",
    )
    storage.put_jsonl(paths.uri(paths.result_failures), (f.model_dump() for f in failures))
    storage.put_json(
        result_manifest_uri,
        {
            "job_id": job_id,
            "status": status,
            "endpoint": settings.resources.endpoint_name,  # the model behind it is a plug-in
            "dims": dims,
            "counts": counts.model_dump(),
            "files": {
                "vectors_jsonl": paths.uri(paths.result_vectors_jsonl),
                "vectors_npy": paths.uri(paths.result_vectors_npy),
                "failures": paths.uri(paths.result_failures),
            },
            "documents": documents,
            "failed_documents": [f.model_dump() for f in failures],
            "failed_batches": [
                {"index": i, "reason": reason} for i, reason in sorted(failed_batches.items())
            ],
        },
    )
    error = (
        ErrorInfo(code="no_vectors", message="no document produced vectors; see failed_documents")
        if status == "FAILED"
        else None
    )
    job, changed = store.finish(job_id, status, counts, result_manifest_uri, failures, error)
    logger.info(
        "delivered",
        extra={"job_id": job_id, "status": status, **counts.model_dump(), "changed": changed},
    )
    notify_job_finished(job, settings, store)
    return DeliverResult(
        job_id=job_id, status=job.status, counts=job.counts, manifest_uri=result_manifest_uri
    )
