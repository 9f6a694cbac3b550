"""Turning a job request into a QUEUED job and a started execution, idempotently.

Used by the api (POST /v1/jobs) and ingest (S3 events, SQS messages). Three layers of
idempotency: a deterministic job id, a create-if-absent conditional put, and the execution
name (= job id), whose ExecutionAlreadyExists is success.
"""

from __future__ import annotations

import time

from tandem_common.adapters.jobs import JobStore, utc_now
from tandem_common.adapters.storage import Storage
from tandem_common.adapters.webhooks import validate_webhook_url
from tandem_common.adapters.workflows import Workflows
from tandem_common.contracts import JobPaths, parse_s3_uri
from tandem_common.errors import InvalidRequest
from tandem_common.models import JobCreate, JobRecord, JobSource, ResolvedOptions
from tandem_common.settings import Settings


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
        self.workflows = workflows or Workflows(settings.resources.state_machine_arn)

    def submit(self, job_id: str, request: JobCreate, source: JobSource) -> JobRecord:
        """Create the job (or find the existing one) and make sure its execution is started."""
        existing = self.store.get(job_id)
        if existing is None:
            check_request(request, self.settings)
            paths = JobPaths(self.settings.resources.data_bucket, job_id)
            if request.documents is not None:
                input_uri = paths.uri(paths.input_documents)
                self.storage.put_jsonl(input_uri, (d.model_dump() for d in request.documents))
            else:
                assert request.source is not None
                input_uri = request.source.s3_uri
            now = utc_now()
            job = JobRecord(
                job_id=job_id,
                status="QUEUED",
                source=source,
                input_uri=input_uri,
                options=resolve_options(request, self.settings),
                created_at=now,
                updated_at=now,
                expires_at=int(time.time()) + self.settings.job_ttl_days * 86400,
                webhook_url=request.options.webhook_url,
                webhook_secret=request.options.webhook_secret,
            )
            existing, _ = self.store.create(job)
        if existing.status == "QUEUED" and existing.execution_arn is None:
            self._start_execution(existing)
        return existing

    def _start_execution(self, job: JobRecord) -> None:
        start_job_execution(self.workflows, self.store, job)


def start_job_execution(workflows: Workflows, store: JobStore, job: JobRecord) -> None:
    """Start the job's execution (named by its job id) and record its ARN on the job."""
    arn = workflows.start(job.job_id)
    store.set_execution_arn(job.job_id, arn)
    job.execution_arn = arn
