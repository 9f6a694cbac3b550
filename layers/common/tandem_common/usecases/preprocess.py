"""Preprocess: read the job's input by reference, decode, normalise, chunk, dedupe, batch.

One pass over the input, in bounded memory whatever the job's size: a JSONL input is streamed
line by line, each batch is written as soon as it is full (on a bounded pool of PUTs), and the
per-document and per-batch lists are spooled to S3 as they grow. Writes, per batch,
`batches/batch-NNNNN.jsonl` (the endpoint's input: unique texts) and `batches/rows-NNNNN.jsonl`
(every chunk of the batch and its output row); for the job, `batches/documents.jsonl`,
`batches/batches.jsonl`, `batches/failures.jsonl` (documents rejected here, with reasons),
`batches/items.json` (the Distributed Map's ItemReader input) and a small
`batches/manifest.json`; returns refs only. A job with no valid document still goes on
(batch_count 0): deliver then marks it FAILED, listing every document, so nothing is lost.

Run by the Express workflow (its execution ARN says so), a job with more batches than
ExpressMaxBatches (or than an inline Map takes) is handed to the Standard workflow
(`intake.hand_to_standard`), which runs it from the start: mode `standard`, and the Express
execution ends there. Its files are rewritten, the same, by the Standard run. Express runs an
execution at least once: a repeat that starts after its job finished finds nothing to do (mode
`done`) and ends there too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.storage import JsonlUpload, PutPool, Storage, encode_jsonl
from tandem_common.adapters.workflows import Workflows
from tandem_common.contracts import JobPaths, input_format, is_express_execution, parse_s3_uri
from tandem_common.errors import InvalidTransition
from tandem_common.models import BatchRef, Counts, PreprocessResult
from tandem_common.observability import logger
from tandem_common.settings import Settings
from tandem_common.text.chunking import Batch, BatchPlacer, chunk_text
from tandem_common.text.decoding import InputDocument, Parsed, iter_jsonl, parse_input
from tandem_common.text.normalise import normalise_text
from tandem_common.usecases.intake import hand_to_standard

JSONL = "application/x-ndjson"


def read_input(input_uri: str, storage: Storage) -> Iterator[Parsed]:
    """The input's documents and rejections in order: JSONL streamed, the rest read whole."""
    _, key = parse_s3_uri(input_uri)
    if input_format(key) == "jsonl":
        yield from iter_jsonl(storage.iter_lines(input_uri))
        return
    parsed = parse_input(key, storage.get_bytes(input_uri))
    yield from parsed.documents
    yield from parsed.rejected


class BatchWriter:
    """Writes each completed batch (input + rows files) and remembers its ref and sizes."""

    def __init__(self, paths: JobPaths, puts: PutPool, batch_list: JsonlUpload) -> None:
        self.paths = paths
        self.puts = puts
        self.batch_list = batch_list
        self.refs: list[BatchRef] = []
        self.unique = 0

    def write(self, batches: list[Batch]) -> None:
        p = self.paths
        for batch in batches:
            ref = BatchRef(
                index=batch.index,
                inputs_uri=p.uri(p.batch_inputs(batch.index)),
                outputs_uri=p.uri(p.batch_outputs(batch.index)),
            )
            texts = ({"chunk_id": cid, "text": text} for cid, text in batch.texts)
            self.puts.put(ref.inputs_uri, encode_jsonl(texts), JSONL)
            rows = (
                {
                    "chunk_id": c.chunk_id,
                    "document_id": c.document_id,
                    "chunk_index": c.chunk_index,
                    "row": c.row,
                }
                for c in batch.chunks
            )
            self.puts.put(p.uri(p.batch_rows(batch.index)), encode_jsonl(rows), JSONL)
            self.batch_list.write(
                {"index": batch.index, "rows": len(batch.chunks), "unique": batch.unique}
            )
            self.refs.append(ref)
            self.unique += batch.unique


def preprocess_job(
    job_id: str,
    settings: Settings,
    store: JobStore,
    storage: Storage,
    execution_arn: str = "",
    workflows: Workflows | None = None,
) -> PreprocessResult:
    express = is_express_execution(execution_arn)
    try:
        job = store.mark_running(job_id)
    except InvalidTransition:
        if not express:
            raise
        logger.info("job already finished: this run of its Express execution ends here")
        return PreprocessResult(
            job_id=job_id,
            batch_count=0,
            manifest_uri="",
            items_key="",
            max_concurrency=settings.chunking.map_max_concurrency,
            mode="done",
            batches=[],
        )
    options = job.options
    paths = JobPaths(settings.resources.data_bucket, job_id)
    placer = BatchPlacer(options.batch_size)
    documents = rejected = 0
    with (
        PutPool(storage) as puts,
        JsonlUpload(storage, paths.uri(paths.batch_list)) as batch_list,
        JsonlUpload(storage, paths.uri(paths.batch_documents)) as doc_list,
        JsonlUpload(storage, paths.uri(paths.document_failures)) as failures,
    ):
        writer = BatchWriter(paths, puts, batch_list)
        for item in read_input(job.input_uri, storage):
            documents += 1
            if not isinstance(item, InputDocument):
                rejected += 1
                failures.write({"id": item.id, "reason": item.reason})
                continue
            text = normalise_text(item.text)
            if not text:
                rejected += 1
                failures.write({"id": item.id, "reason": "empty document"})
                continue
            placed = [
                placer.place(item.id, c)
                for c in chunk_text(text, options.chunk_tokens, options.chunk_overlap)
            ]
            doc_list.write(
                {
                    "id": item.id,
                    "chunks": len(placed),
                    "first_batch": placed[0].batch,
                    "last_batch": placed[-1].batch,
                }
            )
            writer.write(placer.take_completed())
        writer.write(placer.finish())
        refs = writer.refs
        items = _json_array(r.model_dump() for r in refs)
        puts.put(paths.uri(paths.batch_items), items, "application/json")
    manifest_uri = paths.uri(paths.batch_manifest)
    counts = Counts(documents=documents, chunks=placer.placed, failed=rejected)
    storage.put_json(
        manifest_uri,
        {
            "job_id": job_id,
            "batch_count": len(refs),
            "documents": documents,
            "rejected": rejected,
            "chunks": placer.placed,
            "unique_chunks": writer.unique,
        },
    )
    store.record_counts(job_id, counts, batches=len(refs))
    inline = len(refs) <= settings.chunking.inline_map_max_batches
    mode = "inline" if inline else "distributed"
    if express and (not inline or len(refs) > settings.routing.express_max_batches):
        hand_to_standard(job_id, workflows or Workflows.for_settings(settings), store)
        mode = "standard"
    logger.info(
        "preprocessed",
        extra={
            "mode": mode,
            "documents": documents,
            "rejected": rejected,
            "chunks": placer.placed,
            "unique_chunks": writer.unique,
            "batches": len(refs),
            "s3_puts": puts.count,
        },
    )
    return PreprocessResult(
        job_id=job_id,
        batch_count=len(refs),
        manifest_uri=manifest_uri,
        items_key=paths.key(paths.batch_items),
        max_concurrency=settings.chunking.map_max_concurrency,
        mode=mode,
        batches=refs if mode == "inline" else [],
    )


def _json_array(items: Iterator[dict[str, object]]) -> bytes:
    return ("[" + ",".join(json.dumps(i) for i in items) + "]").encode()
