"""Retrying a FAILED or PARTIAL job for its failed documents only (`POST /v1/jobs/{id}/retry`).

The rule (CONTRACTS.md, "Retry"):
- Only FAILED and PARTIAL jobs can be retried (409 otherwise, 404 for an unknown job).
- A document is retried iff its failure was transient: its batch failed at the endpoint, its
  batch output was missing/unreadable, or the vector index did not take its batch (deliver's
  reasons start with "batch failed", "batch output" or "batch not indexed"). Documents rejected
  for permanent reasons (decode errors, NUL bytes, malformed JSON, empty text, duplicate ids, a
  chunk the index cannot hold) are skipped: they would fail the same way again. Skipped
  documents are listed in the response with their reasons.
- A job that FAILED as a whole (a step error caught by the state machine, not deliver's
  `no_vectors`) has no per-document verdict: every document that parses and is not empty is
  retried.
- Nothing retryable → 422 `nothing_to_retry`; the input can no longer be read → 422
  `input_unavailable`.

The retry job is a new inline job (`jobs/{retry_id}/input/documents.jsonl`) with the failed
documents' original text, read by reference from the original job's input, the original's
options and webhook, and `retry_of`; the original lists it in `retries`. Its id is
`uuid5(NS, "retry:" + job_id)`, or `"retry:" + job_id + ":" + Idempotency-Key` when a key is
given, so a repeated call returns the same job and starts no second execution.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from tandem_common.adapters.jobs import JobStore, utc_now
from tandem_common.adapters.storage import Storage, encode_jsonl
from tandem_common.adapters.workflows import Workflows
from tandem_common.contracts import JobPaths, parse_s3_uri, retry_job_id
from tandem_common.errors import InvalidRequest, TandemError
from tandem_common.models import DocumentFailure, JobLinks, JobRecord, RetryAccepted
from tandem_common.settings import Settings
from tandem_common.text.decoding import InputDocument, parse_input
from tandem_common.text.normalise import normalise_text
from tandem_common.usecases.intake import choose_workflow, create_job, start_job_execution

__all__ = ["RetryService", "is_transient", "plan_retry", "retry_job_id"]

RETRYABLE_STATUSES = frozenset({"FAILED", "PARTIAL"})
TRANSIENT_REASON_PREFIXES = ("batch failed", "batch output", "batch not indexed")
PER_DOCUMENT_ERROR_CODES = frozenset({"no_vectors"})  # deliver ran: failures are per document
MAX_SKIPPED_SHOWN = 100
RETRY_INFO = "input/retry.json"  # the retry job's own record of what it holds and skipped


class JobNotRetryable(TandemError):
    code = "not_retryable"
    status = 409


class NothingToRetry(InvalidRequest):
    code = "nothing_to_retry"


class InputUnavailable(InvalidRequest):
    code = "input_unavailable"


def is_transient(reason: str) -> bool:
    """A failure worth retrying: the batch (endpoint) failed, not the document itself."""
    return reason.startswith(TRANSIENT_REASON_PREFIXES)


@dataclass
class RetryPlan:
    documents: list[InputDocument] = field(default_factory=list)
    skipped: list[DocumentFailure] = field(default_factory=list)


def _job_failed_as_a_whole(job: JobRecord) -> bool:
    return job.status == "FAILED" and (
        job.error is None or job.error.code not in PER_DOCUMENT_ERROR_CODES
    )


def _read_failures(job: JobRecord, storage: Storage, paths: JobPaths) -> list[DocumentFailure]:
    """Every failure from `result/failures.jsonl`; the record's first 100 if the file is gone."""
    data = storage.get_bytes_if_exists(paths.uri(paths.result_failures))
    if data is None:
        return list(job.failed_documents)
    return [
        DocumentFailure.model_validate(json.loads(line))
        for line in data.splitlines()
        if line.strip()
    ]


def plan_retry(job: JobRecord, storage: Storage, bucket: str) -> RetryPlan:
    """Which of the job's documents to retry (with their original text) and which to skip."""
    try:
        _, key = parse_s3_uri(job.input_uri)
        data = storage.get_bytes_if_exists(job.input_uri)
    except ValueError:
        data = None
    if data is None:
        raise InputUnavailable(f"the input of job {job.job_id} can no longer be read")
    parsed = parse_input(key, data)
    plan = RetryPlan()
    if _job_failed_as_a_whole(job):
        plan.skipped = [DocumentFailure(id=r.id, reason=r.reason) for r in parsed.rejected]
        for doc in parsed.documents:
            if normalise_text(doc.text):
                plan.documents.append(doc)
            else:
                plan.skipped.append(DocumentFailure(id=doc.id, reason="empty document"))
        return plan

    wanted: set[str] = set()
    transient: list[DocumentFailure] = []
    for failure in _read_failures(job, storage, JobPaths(bucket, job.job_id)):
        if is_transient(failure.reason):
            wanted.add(failure.id)
            transient.append(failure)
        else:
            plan.skipped.append(failure)
    plan.documents = [d for d in parsed.documents if d.id in wanted]
    found = {d.id for d in plan.documents}
    plan.skipped.extend(
        DocumentFailure(id=f.id, reason="not found in the job's input")
        for f in transient
        if f.id not in found
    )
    return plan


class RetryService:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        storage: Storage,
        workflows: Workflows | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.storage = storage
        self.workflows = workflows or Workflows.for_settings(settings)

    def retry(self, job_id: str, idempotency_key: str | None = None) -> RetryAccepted:
        """Create (or find) the retry job of `job_id` and make sure its execution is started."""
        original = self.store.require(job_id)
        if original.status not in RETRYABLE_STATUSES:
            raise JobNotRetryable(
                f"job {job_id} is {original.status}; only FAILED or PARTIAL jobs can be retried"
            )
        bucket = self.settings.resources.data_bucket
        rid = retry_job_id(job_id, idempotency_key)
        paths = JobPaths(bucket, rid)
        job = self.store.get(rid)
        info: dict[str, Any]
        if job is None:
            plan = plan_retry(original, self.storage, bucket)
            info = {
                "retry_of": job_id,
                "documents": len(plan.documents),
                "skipped": [s.model_dump() for s in plan.skipped[:MAX_SKIPPED_SHOWN]],
                "skipped_count": len(plan.skipped),
            }
            if not plan.documents:
                example = "; ".join(f"{s.id}: {s.reason}" for s in plan.skipped[:3])
                raise NothingToRetry(
                    f"job {job_id} has no document to retry: {len(plan.skipped)} failed for "
                    f"permanent reasons and would fail again ({example})"
                )
            input_uri = paths.uri(paths.input_documents)
            data = encode_jsonl({"id": d.id, "text": d.text} for d in plan.documents)
            self.storage.put_bytes(input_uri, data, "application/x-ndjson")
            self.storage.put_json(paths.uri(RETRY_INFO), info)
            now = utc_now()
            workflow = choose_workflow(
                self.settings, len(data), len(plan.documents), original.options.batch_size
            )
            job = create_job(
                self.store,
                JobRecord(
                    job_id=rid,
                    status="QUEUED",
                    source="api",
                    input_uri=input_uri,
                    options=original.options,
                    created_at=now,
                    updated_at=now,
                    expires_at=int(time.time()) + self.settings.job_ttl_days * 86400,
                    workflow=workflow,
                    webhook_url=original.webhook_url,
                    webhook_secret=original.webhook_secret,
                    retry_of=job_id,
                ),
            )
        else:
            raw = self.storage.get_bytes_if_exists(paths.uri(RETRY_INFO))
            info = json.loads(raw) if raw else {}
        if job.retry_of != job_id:  # an id collision is impossible with uuid5; be loud anyway
            raise JobNotRetryable(f"job {rid} exists and is not a retry of {job_id}")
        self.store.add_retry(job_id, rid)
        if job.status == "QUEUED" and job.execution_arn is None:
            self._start_execution(job)
        return RetryAccepted(
            job_id=rid,
            status=job.status,
            retry_of=job_id,
            documents=int(info.get("documents", job.counts.documents)),
            skipped=[DocumentFailure.model_validate(s) for s in info.get("skipped", [])],
            skipped_count=int(info.get("skipped_count", 0)),
            links=JobLinks(self=f"/v1/jobs/{rid}"),
        )

    def _start_execution(self, job: JobRecord) -> None:
        start_job_execution(self.workflows, self.store, job)
