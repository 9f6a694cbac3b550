"""Turning S3 "Object Created" events and SQS messages into jobs, idempotently."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

from tandem_common.adapters.aws import error_code
from tandem_common.adapters.idempotency import persistence_layer
from tandem_common.contracts import is_inbox_key, s3_job_id, s3_revision, s3_uri, sqs_job_id
from tandem_common.errors import TandemError
from tandem_common.models import (
    JobCreate,
    JobSource,
    Model,
    QueueMessage,
    Source,
    ValidationError,
    field,
    validation_errors,
)
from tandem_common.settings import Settings, get_settings
from tandem_common.usecases.intake import JobIntake


class PoisonMessage(ValueError):
    """A message that can never become a job (reported as a batch item failure)."""


class Submission(Model):
    job_id: str
    source: JobSource
    request: JobCreate
    size_hint: int | None = None  # the source object's size, when the event carries it


class _S3Bucket(Model):
    name: str


class _S3Object(Model):
    key: str
    size: int | None = None
    etag: str = ""
    version_id: str | None = field(default=None, name="version-id")


class _S3Detail(Model):
    bucket: _S3Bucket
    object: _S3Object


class ObjectCreated(Model):
    """The fields ingest reads of EventBridge's S3 "Object Created" event. (Powertools'
    `S3EventNotificationEventBridgeModel` says the same, but importing it builds every parser
    model Powertools has: a cold-start cost, docs/BENCHMARKS.md.)"""

    detail: _S3Detail


@dataclass(frozen=True)
class Ingest:
    settings: Settings
    intake: JobIntake
    idempotency_config: IdempotencyConfig


@lru_cache(maxsize=1)
def ingest() -> Ingest:
    settings = get_settings()
    return Ingest(
        settings,
        JobIntake(settings),
        IdempotencyConfig(event_key_jmespath="job_id", raise_on_no_idempotency_key=True),
    )


def _submit(submission: Submission) -> dict[str, Any]:
    job = ingest().intake.submit(
        submission.job_id, submission.request, submission.source, submission.size_hint
    )
    return {"job_id": job.job_id, "status": job.status}


@lru_cache(maxsize=1)
def _idempotent_submit() -> Any:
    """`_submit` behind Powertools idempotency on IDEMPOTENCY_TABLE (keyed by job id)."""
    svc = ingest()
    table = svc.settings.resources.idempotency_table
    if not table:
        return _submit
    return idempotent_function(
        data_keyword_argument="submission",
        persistence_store=persistence_layer(table),
        config=svc.idempotency_config,
    )(_submit)


def submit(submission: Submission) -> dict[str, Any]:
    result: dict[str, Any] = _idempotent_submit()(submission=submission)
    return result


def submission_from_object_created(event: dict[str, Any]) -> Submission | None:
    """EventBridge S3 "Object Created" → a job for `inbox/` keys of the data bucket; else None."""
    parsed = ObjectCreated.model_validate(event)
    bucket, obj = parsed.detail.bucket.name, parsed.detail.object
    if bucket != ingest().settings.resources.data_bucket or not is_inbox_key(obj.key):
        return None  # another bucket, outside inbox/, or a "folder" placeholder
    job_id = s3_job_id(bucket, obj.key, s3_revision(obj.version_id, obj.etag))
    request = JobCreate(source=Source(s3_uri=s3_uri(bucket, obj.key)))
    return Submission(job_id=job_id, source="s3", request=request, size_hint=obj.size)


def submission_from_message(body: str, message_id: str) -> Submission:
    """An SQS message body → a submission; anything unusable raises PoisonMessage."""
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        raise PoisonMessage(f"message body is not JSON: {exc.msg}") from exc
    try:
        message = QueueMessage.model_validate(payload)
        request = message.as_job_create()
    except ValueError as exc:
        raise PoisonMessage(f"message is not a job request: {_text_free(exc)}") from exc
    job_id = message.job_id or sqs_job_id(message_id)
    return Submission(job_id=job_id, source="sqs", request=request)


def _text_free(exc: ValueError) -> str:
    """A validation error as `field: problem` pairs (msgspec's messages never quote the input,
    which can be document text)."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}"
            for e in validation_errors(exc)
        )
    return type(exc).__name__


def failure_reason(exc: BaseException) -> str:
    """Why a record failed, fit for a log line: our own errors' messages (which never quote
    document text), otherwise the exception type and the AWS error code, if any."""
    if isinstance(exc, PoisonMessage | TandemError):
        return str(exc)
    code = error_code(exc)
    return f"{type(exc).__name__}: {code}" if code else type(exc).__name__
