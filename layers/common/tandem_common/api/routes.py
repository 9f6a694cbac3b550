"""The api's routes: jobs and uploads (the OpenAI-compatible ones are in `openai_compat.py`).
Domain errors raise `TandemError`s; `app.py` maps them to `{"error": {"code", "message"}}`
responses in one place."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.storage import Storage
from tandem_common.api.http import APPLICATION_JSON, Body, Header, Path, Query, Response, Router
from tandem_common.contracts import JobPaths, api_job_id, s3_uri
from tandem_common.errors import InvalidRequest, JobNotFinished, JobNotFound, PayloadTooLarge
from tandem_common.models import (
    TERMINAL_STATUSES,
    Downloads,
    JobAccepted,
    JobCreate,
    JobLinks,
    JobRecord,
    JobView,
    Model,
    Progress,
    RetryAccepted,
    ShardLink,
    ShardPage,
    Timings,
    UploadRequest,
    UploadTicket,
)
from tandem_common.models import ErrorInfo as _ErrorInfo
from tandem_common.observability import bind_job, logger
from tandem_common.settings import Settings, get_settings
from tandem_common.usecases.intake import JobIntake
from tandem_common.usecases.retry import RetryService

MAX_JOB_BODY_BYTES = 5 * 1024 * 1024
MAX_EMBEDDINGS_BODY_BYTES = 1024 * 1024
UPLOAD_URL_TTL_S = 900
DOWNLOAD_URL_TTL_S = 3600
MAX_SHARDS_PAGE = 1000
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

router = Router()


class ErrorBody(Model):
    """Every error response: `{"error": {"code", "message"}}` (handler.py)."""

    error: _ErrorInfo


def _responses(ok: int, model: type[Model], *errors: int) -> dict[int, dict[str, Any]]:
    """OpenAPI responses of a route: its success model and the error codes it can answer."""
    json_ct = APPLICATION_JSON
    out: dict[int, dict[str, Any]] = {
        ok: {"description": "OK", "content": {json_ct: {"model": model}}}
    }
    for code in (400, 413, 422, 500, *errors):
        out[code] = {"description": "error", "content": {json_ct: {"model": ErrorBody}}}
    return out


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: JobStore
    storage: Storage
    intake: JobIntake


@lru_cache(maxsize=1)
def services() -> Services:
    settings = get_settings()
    store = JobStore(settings.resources.jobs_table)
    storage = Storage()
    return Services(settings, store, storage, JobIntake(settings, store, storage))


def body_limit_for(path: str) -> int:
    return (
        MAX_EMBEDDINGS_BODY_BYTES
        if path.rstrip("/").endswith("/embeddings")
        else MAX_JOB_BODY_BYTES
    )


def check_body_size(path: str, body: str | None) -> None:
    """413 before any parsing: the HTTP API allows 10 MB, our routes far less."""
    limit = body_limit_for(path)
    if body is not None and len(body) > limit * 4 // 3 + 4:  # base64 bodies are 4/3 larger
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    if body is not None and len(body.encode()) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")


def _json(status: int, model: Any) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=APPLICATION_JSON,
        body=model.model_dump(mode="json", exclude_none=False),
    )


def _job_link(job_id: str) -> JobLinks:
    return JobLinks(self=f"/v1/jobs/{job_id}")


@router.post("/v1/jobs", summary="Create an embedding job", responses=_responses(202, JobAccepted))
def create_job(
    request: Annotated[JobCreate, Body()],
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=256)] = None,
) -> Response[Any]:
    job_id = api_job_id(idempotency_key) if idempotency_key else str(uuid.uuid4())
    bind_job(job_id)
    job = services().intake.submit(job_id, request, source="api")
    logger.info("job accepted", extra={"status": job.status, "workflow": job.workflow})
    return _json(202, JobAccepted(job_id=job.job_id, status=job.status, links=_job_link(job_id)))


def _duration(job: JobRecord) -> float | None:
    if not (job.started_at and job.finished_at):
        return None
    start = datetime.fromisoformat(job.started_at.replace("Z", "+00:00"))
    end = datetime.fromisoformat(job.finished_at.replace("Z", "+00:00"))
    return round((end - start).total_seconds(), 3)


def job_view(job: JobRecord, storage: Storage, bucket: str) -> JobView:
    downloads = None
    if job.status in TERMINAL_STATUSES and job.manifest_uri:
        paths = JobPaths(bucket, job.job_id)

        def url(rel: str) -> str:
            return storage.presign_get(paths.uri(rel), DOWNLOAD_URL_TTL_S)

        downloads = Downloads(
            manifest=url(paths.result_manifest),
            documents=url(paths.result_documents),
            failures=url(paths.result_failures),
            shards=url(paths.result_shards),
        )
    progress = job.progress
    if progress is not None:  # a retried collect step may count twice: never past the total
        progress = Progress(
            batches=progress.batches, batches_done=min(progress.batches_done, progress.batches)
        )
    return JobView(
        job_id=job.job_id,
        status=job.status,
        source=job.source,
        options=job.options,
        counts=job.counts,
        progress=progress,
        timings=Timings(
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            duration_s=_duration(job),
        ),
        manifest_uri=job.manifest_uri,
        downloads=downloads,
        error=job.error,
        failed_documents=job.failed_documents,
        retry_of=job.retry_of,
        retries=job.retries,
        webhook=job.webhook,
        links=_job_link(job.job_id),
    )


@router.get(
    "/v1/jobs/<job_id>",
    summary="Get a job's status and results",
    responses=_responses(200, JobView, 404),
)
def get_job(job_id: Annotated[str, Path(max_length=64)]) -> Response[Any]:
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise JobNotFound(f"job {job_id} not found") from None
    svc = services()
    job = svc.store.require(job_id)
    return _json(200, job_view(job, svc.storage, svc.settings.resources.data_bucket))


@router.get(
    "/v1/jobs/<job_id>/shards",
    summary="List a finished job's result shards, with presigned downloads",
    responses=_responses(200, ShardPage, 404, 409),
)
def list_shards(
    job_id: Annotated[str, Path(max_length=64)],
    start: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_SHARDS_PAGE)] = MAX_SHARDS_PAGE,
) -> Response[Any]:
    """A page of the job's shards (`result/shards.jsonl`), each with presigned GETs of its
    JSONL and .npy; `next_start` is null on the last page."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise JobNotFound(f"job {job_id} not found") from None
    svc = services()
    job = svc.store.require(job_id)
    if job.status not in TERMINAL_STATUSES or not job.manifest_uri:
        raise JobNotFinished(f"job {job_id} is {job.status}: its results are not written yet")
    paths = JobPaths(svc.settings.resources.data_bucket, job_id)
    shards: list[ShardLink] = []
    total = 0
    for row in svc.storage.iter_jsonl(paths.uri(paths.result_shards)):
        if start <= total < start + limit:
            shards.append(
                ShardLink(
                    index=row["index"],
                    rows=row["rows"],
                    vectors_jsonl=svc.storage.presign_get(row["vectors_jsonl"], DOWNLOAD_URL_TTL_S),
                    vectors_npy=svc.storage.presign_get(row["vectors_npy"], DOWNLOAD_URL_TTL_S),
                )
            )
        total += 1
    following = start + len(shards)
    page = ShardPage(
        job_id=job_id,
        total=total,
        shards=shards,
        next_start=following if following < total else None,
    )
    return _json(200, page)


@router.post(
    "/v1/jobs/<job_id>/retry",
    summary="Retry a FAILED or PARTIAL job for its transiently failed documents only",
    responses=_responses(202, RetryAccepted, 404, 409),
)
def retry_job(
    job_id: Annotated[str, Path(max_length=64)],
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=256)] = None,
) -> Response[Any]:
    """202 with the retry job (the same one on a repeat); see tandem_common/retry.py."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise JobNotFound(f"job {job_id} not found") from None
    svc = services()
    accepted = RetryService(svc.settings, svc.store, svc.storage).retry(job_id, idempotency_key)
    bind_job(accepted.job_id)
    logger.info("retry accepted", extra={"retry_of": job_id})
    return _json(202, accepted)


@router.post(
    "/v1/uploads",
    summary="Get a presigned PUT URL for an inbox upload",
    responses=_responses(201, UploadTicket),
)
def create_upload(request: Annotated[UploadRequest, Body()]) -> Response[Any]:
    name = request.filename
    if not _SAFE_FILENAME.match(name) or ".." in name:
        raise InvalidRequest("filename must be a plain file name: letters, digits, '.', '_', '-'")
    svc = services()
    uri = s3_uri(svc.settings.resources.data_bucket, f"inbox/{uuid.uuid4()}/{name}")
    url = svc.storage.presign_put(uri, request.content_type, UPLOAD_URL_TTL_S)
    ticket = UploadTicket(
        upload_url=url,
        s3_uri=uri,
        expires_in=UPLOAD_URL_TTL_S,
        headers={"Content-Type": request.content_type},
    )
    return _json(201, ticket)
