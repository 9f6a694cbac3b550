"""Turning a job request into a QUEUED job and a started execution, idempotently.

Used by the api (POST /v1/jobs, retries) and ingest (S3 events, SQS messages). Three layers of
idempotency: a deterministic job id, a create-if-absent conditional put, and the execution
name (= job id), whose ExecutionAlreadyExists is success on Standard. (Express does not dedupe
by name: a twin request may start a second Express execution, whose effects are the same
idempotent writes, docs/RELIABILITY.md.)

The job's workflow is chosen here, once, and recorded on the job (`choose_workflow`).
"""

from __future__ import annotations

import math
import time

from tandem_common.adapters.jobs import JobStore, utc_now
from tandem_common.adapters.storage import Storage, encode_jsonl
from tandem_common.adapters.webhooks import validate_webhook_url
from tandem_common.adapters.workflows import Workflows
from tandem_common.contracts import JobPaths, Workflow, parse_s3_uri
from tandem_common.errors import InvalidRequest
from tandem_common.models import JobCreate, JobRecord, JobSource, ResolvedOptions
from tandem_common.observability import JOBS_STARTED, emit, logger
from tandem_common.settings import Settings


def choose_workflow(
    settings: Settings, size_bytes: int | None, documents: int | None, batch_size: int
) -> Workflow:
    """Express for a job known to be small: its input is at most ExpressMaxBytes (an inline
    job's JSONL, an S3 object's size), and, when the documents are counted, they cannot make more
    than ExpressMaxBatches batches (each document is at least one chunk). Everything else, and
    anything of unknown size, runs on Standard. Preprocess hands an Express job that turns out
    bigger (more batches than ExpressMaxBatches) to Standard (`hand_to_standard`)."""
    routing = settings.routing
    if not settings.express_enabled or size_bytes is None or size_bytes > routing.express_max_bytes:
        return "standard"
    if documents is not None and math.ceil(documents / batch_size) > routing.express_max_batches:
        return "standard"
    return "express"


def resolve_options(request: JobCreate, settings: Settings) -> ResolvedOptions:
    d = settings.chunking
    tokens = request.options.chunk_tokens or d.chunk_tokens
    overlap = request.options.chunk_overlap
    if overlap is None:
        overlap = min(d.chunk_overlap, tokens // 2)
    return ResolvedOptions(
        chunk_tokens=tokens,
        chunk_overlap=overlap,
        batch_size=request.options.batch_size or d.batch_size,
    )


def check_request(request: JobCreate, settings: Settings) -> None:
    """Rules beyond the model's shape: the source bucket and the webhook target."""
    if request.source is not None:
        try:
            bucket, _ = parse_s3_uri(request.source.s3_uri)
        except ValueError as exc:
            raise InvalidRequest("source.s3_uri is not a valid s3://bucket/key URI") from exc
        if bucket != settings.resources.data_bucket:
            data_bucket = settings.resources.data_bucket
            raise InvalidRequest(f"source.s3_uri must be in the data bucket s3://{data_bucket}")
    if request.options.webhook_url is not None:
        validate_webhook_url(request.options.webhook_url, settings.webhooks.allow_private_webhooks)


class JobIntake:
    def __init__(
        self,
        settings: Settings,
        store: JobStore | None = None,
        storage: Storage | None = None,
        workflows: Workflows | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or JobStore(settings.resources.jobs_table)
        self.storage = storage or Storage()
        self.workflows = workflows or Workflows.for_settings(settings)

    def submit(
        self, job_id: str, request: JobCreate, source: JobSource, size_hint: int | None = None
    ) -> JobRecord:
        """Create the job (or find the existing one) and make sure its execution is started.
        `size_hint`: the source object's size when the caller knows it (an S3 event)."""
        existing = self.store.get(job_id)
        if existing is None:
            check_request(request, self.settings)
            paths = JobPaths(self.settings.resources.data_bucket, job_id)
            options = resolve_options(request, self.settings)
            documents: int | None = None
            if request.documents is not None:
                input_uri = paths.uri(paths.input_documents)
                data = encode_jsonl(d.model_dump() for d in request.documents)
                self.storage.put_bytes(input_uri, data, "application/x-ndjson")
                size: int | None = len(data)
                documents = len(request.documents)
            else:
                assert request.source is not None
                input_uri = request.source.s3_uri
                size = size_hint if size_hint is not None else self.storage.size(input_uri)
            now = utc_now()
            job = JobRecord(
                job_id=job_id,
                status="QUEUED",
                source=source,
                input_uri=input_uri,
                options=options,
                created_at=now,
                updated_at=now,
                expires_at=int(time.time()) + self.settings.job_ttl_days * 86400,
                workflow=choose_workflow(self.settings, size, documents, options.batch_size),
                webhook_url=request.options.webhook_url,
                webhook_secret=request.options.webhook_secret,
            )
            existing = create_job(self.store, job)
        if existing.status == "QUEUED" and existing.execution_arn is None:
            self._start_execution(existing)
        return existing

    def _start_execution(self, job: JobRecord) -> None:
        start_job_execution(self.workflows, self.store, job)


def create_job(store: JobStore, job: JobRecord) -> JobRecord:
    """Put the job if absent (returns the stored one); a job created here counts as started."""
    stored, created = store.create(job)
    if created:
        emit(JOBS_STARTED, EntryPath=stored.source, Workflow=stored.workflow)
    return stored


def start_job_execution(workflows: Workflows, store: JobStore, job: JobRecord) -> None:
    """Start the job's execution (named by its job id) on its workflow and record its ARN."""
    arn = workflows.start(job.job_id, job.workflow)
    store.set_execution_arn(job.job_id, arn)
    job.execution_arn = arn


def hand_to_standard(job_id: str, workflows: Workflows, store: JobStore) -> str:
    """An Express job too big for Express: the Standard workflow takes it over. The record says
    so first, so the Standard run, and every reader (the watchdog), treat it as Standard; then
    its Standard execution is started (idempotent by name) and recorded. Safe to repeat."""
    store.set_workflow(job_id, "standard")
    arn = workflows.start(job_id, "standard")
    store.set_execution_arn(job_id, arn)
    logger.info("handed to the standard workflow", extra={"execution_arn": arn})
    return arn
