"""Preprocess: read the job's input by reference, decode, normalise, chunk, dedupe, batch.

Writes `batches/batch-NNNNN.jsonl`, `batches/chunks.jsonl`, `batches/failures.jsonl` (documents
rejected here, with reasons) and `batches/manifest.json`; returns refs only. A job with no
valid document still goes on (batch_count 0): deliver then marks it FAILED, listing every
document, so nothing is lost.
"""

from __future__ import annotations

from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.storage import Storage
from tandem_common.contracts import JobPaths, parse_s3_uri
from tandem_common.models import BatchRef, Counts, PreprocessResult
from tandem_common.observability import logger
from tandem_common.settings import Settings
from tandem_common.text.chunking import Chunk, chunk_text, place_chunks
from tandem_common.text.decoding import RejectedDocument, parse_input
from tandem_common.text.normalise import normalise_text


def preprocess_job(
    job_id: str, settings: Settings, store: JobStore, storage: Storage
) -> PreprocessResult:
    job = store.mark_running(job_id)
    options = job.options
    paths = JobPaths(settings.resources.data_bucket, job_id)
    _, key = parse_s3_uri(job.input_uri)
    parsed = parse_input(key, storage.get_bytes(job.input_uri))

    rejected: list[RejectedDocument] = list(parsed.rejected)
    chunks: list[tuple[str, Chunk]] = []
    for doc in parsed.documents:
        text = normalise_text(doc.text)
        if not text:
            rejected.append(RejectedDocument(doc.id, "empty document"))
            continue
        chunks.extend(
            (doc.id, c) for c in chunk_text(text, options.chunk_tokens, options.chunk_overlap)
        )

    placed, batches = place_chunks(chunks, options.batch_size)
    refs = [
        BatchRef(
            index=i,
            inputs_uri=paths.uri(paths.batch_inputs(i)),
            outputs_uri=paths.uri(paths.batch_outputs(i)),
        )
        for i in range(len(batches))
    ]
    for ref, batch in zip(refs, batches, strict=True):
        storage.put_jsonl(ref.inputs_uri, ({"chunk_id": c.chunk_id, "text": c.text} for c in batch))
    storage.put_jsonl(
        paths.uri(paths.chunks),
        (
            {
                "chunk_id": c.chunk_id,
                "document_id": c.document_id,
                "chunk_index": c.chunk_index,
                "batch": c.batch,
                "row": c.row,
            }
            for c in placed
        ),
    )
    storage.put_jsonl(
        paths.uri(paths.document_failures), ({"id": r.id, "reason": r.reason} for r in rejected)
    )
    manifest_uri = paths.uri(paths.batch_manifest)
    storage.put_json(
        manifest_uri,
        {
            "job_id": job_id,
            "batch_count": len(refs),
            "batches": [r.model_dump() for r in refs],
        },
    )
    storage.put_json(paths.uri(paths.batch_items), [r.model_dump() for r in refs])
    counts = Counts(
        documents=len(parsed.documents) + len(parsed.rejected),
        chunks=len(placed),
        failed=len(rejected),
    )
    store.record_counts(job_id, counts)
    inline = len(refs) <= settings.chunking.inline_map_max_batches
    logger.info(
        "preprocessed",
        extra={
            "job_id": job_id,
            "documents": counts.documents,
            "rejected": len(rejected),
            "chunks": counts.chunks,
            "unique_chunks": sum(len(b) for b in batches),
            "batches": len(refs),
        },
    )
    return PreprocessResult(
        job_id=job_id,
        batch_count=len(refs),
        manifest_uri=manifest_uri,
        items_key=paths.key(paths.batch_items),
        max_concurrency=settings.chunking.map_max_concurrency,
        mode="inline" if inline else "distributed",
        batches=refs if inline else [],
    )
