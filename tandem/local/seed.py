"""Seed state for a local cloud: the objects and jobs that the files in `events/` refer to.

`tandem local up --seed events/seed.json` applies a seed once everything is up (before the event
sources start, so seeded `inbox/` objects make no job of their own); `tandem local seed FILE`
applies it again to a running local cloud, which puts every seeded job back as the seed says.

A seed file (JSON):

    {"objects": {"inbox/upload-1/docs.jsonl": [{"id": "doc-1", "text": "..."}],  # JSONL rows
                 "inbox/notes.txt": "plain text"},                              # or raw text
     "jobs": [{"job_id": "<uuid>", "input": "inbox/upload-1/docs.jsonl",
               "options": {"batch_size": 1}, "stage": "embedded", "failed_batches": [1]}]}

Objects go into the data bucket. A job is built by the pipeline's own steps up to `stage`, with
no execution (nothing moves it on by itself):
- `queued`: the job record, as `POST /v1/jobs` with a source would make it (status QUEUED);
- `preprocessed`: then the preprocess function ran on it (RUNNING, batch files written);
- `embedded`: then the endpoint embedded every batch not in `failed_batches` (claim-check
  call, as the state machine makes it); the others have no output, as after an endpoint error;
- `delivered`: then the deliver function ran, with each of `failed_batches` reported as a 500
  ModelError (SUCCEEDED, or PARTIAL listing those batches' documents as transient failures).

Re-applying first removes the job's record and everything under `jobs/<job_id>/`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tandem_common.adapters.jobs import JobStore, utc_now
from tandem_common.contracts import s3_uri
from tandem_common.models import JobCreate, JobOptions, JobRecord, Source
from tandem_common.settings import Settings
from tandem_common.usecases.intake import resolve_options

from tandem.local import local_client
from tandem.local.state import LocalCloudState
from tandem.local.template import LocalTemplate

STAGES = ("queued", "preprocessed", "embedded", "delivered")
API, PREPROCESS, DELIVER = "ApiFunction", "PreprocessFunction", "DeliverFunction"
# What the state machine records for a batch whose endpoint call failed with a 5xx ModelError.
ENDPOINT_ERROR = {
    "Error": "SageMakerRuntime.ModelErrorException",
    "Cause": 'Received server error (500) from primary with message "CUDA out of memory"',
}


class SeedError(Exception):
    """A seed file that cannot be applied (the message names the file and the part)."""


@dataclass(frozen=True)
class SeedJob:
    job_id: str
    input: str
    stage: str = "queued"
    options: dict[str, Any] = field(default_factory=dict)
    failed_batches: tuple[int, ...] = ()


@dataclass(frozen=True)
class Seed:
    path: Path
    objects: dict[str, Any]
    jobs: tuple[SeedJob, ...]

    @property
    def job_ids(self) -> list[str]:
        return [j.job_id for j in self.jobs]

    def apply(self, target: SeedTarget, job_ids: list[str] | None = None) -> list[str]:
        """Put the objects, then (re)build the seeded jobs (all, or those of `job_ids`)."""
        for key, content in self.objects.items():
            body = (
                "".join(json.dumps(row) + "\n" for row in content)
                if isinstance(content, list)
                else str(content)
            )
            target.put_object(key, body.encode())
        built = []
        for job in self.jobs:
            if job_ids is None or job.job_id in job_ids:
                target.build(job)
                built.append(job.job_id)
        return built


def load_seed(path: str | Path) -> Seed:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SeedError(f"{path}: {exc}") from None
    objects = doc.get("objects", {})
    if not isinstance(objects, dict):
        raise SeedError(f"{path}: objects must map keys to JSONL rows or text")
    jobs = []
    for i, raw in enumerate(doc.get("jobs", [])):
        try:
            job = SeedJob(
                job_id=raw["job_id"],
                input=raw["input"],
                stage=raw.get("stage", "queued"),
                options=dict(raw.get("options", {})),
                failed_batches=tuple(raw.get("failed_batches", ())),
            )
        except (KeyError, TypeError) as exc:
            raise SeedError(f"{path}: jobs[{i}] needs job_id and input ({exc})") from None
        if job.stage not in STAGES:
            raise SeedError(f"{path}: jobs[{i}] stage {job.stage!r} is not one of {STAGES}")
        jobs.append(job)
    return Seed(path, objects, tuple(jobs))


class SeedTarget:
    """A running local cloud, reached over its URLs (the same code in-process and from the CLI)."""

    def __init__(self, template: LocalTemplate, state: LocalCloudState) -> None:
        from botocore.config import Config

        missing = [n for n in ("moto_url", "endpoint_url", "lambda_url") if not getattr(state, n)]
        if missing:  # an empty endpoint URL would send these clients to AWS itself
            raise SeedError(f"seeding needs the local cloud's {', '.join(missing)}")
        self.template = template
        self.functions = template.functions()
        env = self.functions[API].environment
        self.settings = Settings.from_mapping(env)
        self.bucket = self.settings.resources.data_bucket
        self.endpoint_name = env.get("ENDPOINT_NAME", "")
        region = state.region
        self.s3 = local_client("s3", state.moto_url, region)
        self.store = JobStore(
            self.settings.resources.jobs_table, local_client("dynamodb", state.moto_url, region)
        )
        self.sagemaker = local_client("sagemaker-runtime", state.endpoint_url, region)
        # one attempt (an invoke is not idempotent), waiting as long as a function may run
        once = Config(read_timeout=960, retries={"total_max_attempts": 1})
        self.lambdas = local_client("lambda", state.lambda_url, region, config=once)

    @classmethod
    def from_state(cls, template_path: Path, state: LocalCloudState) -> SeedTarget:
        tpl = LocalTemplate(
            template_path, stack_name=state.stack_name, overrides=state.parameter_overrides
        )
        return cls(tpl, state)

    # ------------------------------------------------------------------ one job
    def build(self, job: SeedJob) -> None:
        self._remove(job.job_id)
        self._record(job)
        stage = STAGES.index(job.stage)
        if stage < 1:
            return
        pre = self._invoke(PREPROCESS, {"job_id": job.job_id})
        if stage < 2:
            return
        for batch in pre["batches"]:
            if batch["index"] not in job.failed_batches:
                self.sagemaker.invoke_endpoint(
                    EndpointName=self.endpoint_name,
                    ContentType="application/json",
                    Accept="application/json",
                    Body=json.dumps(
                        {"inputs_uri": batch["inputs_uri"], "outputs_uri": batch["outputs_uri"]}
                    ),
                )
        if stage < 3:
            return
        results = [
            {"index": b["index"], "ok": False, "error": ENDPOINT_ERROR}
            if b["index"] in job.failed_batches
            else {"index": b["index"], "ok": True}
            for b in pre["batches"]
        ]
        self._invoke(DELIVER, {"job_id": job.job_id, "batch_results": results})

    def put_object(self, key: str, body: bytes) -> None:
        """Put an object unless it is there already with these bytes: a new version of an
        `inbox/` object would be an upload, and the local cloud would make a job of it."""
        try:
            etag = self.s3.head_object(Bucket=self.bucket, Key=key)["ETag"].strip('"')
        except self.s3.exceptions.ClientError:
            etag = None
        if etag != hashlib.md5(body, usedforsecurity=False).hexdigest():
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def _remove(self, job_id: str) -> None:
        prefix = f"jobs/{job_id}/"
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
        self.store.client.delete_item(
            TableName=self.settings.resources.jobs_table, Key={"job_id": {"S": job_id}}
        )

    def _record(self, job: SeedJob) -> None:
        request = JobCreate(
            source=Source(s3_uri=s3_uri(self.bucket, job.input)),
            options=JobOptions.model_validate(job.options),
        )
        now = utc_now()
        self.store.create(
            JobRecord(
                job_id=job.job_id,
                status="QUEUED",
                source="api",
                input_uri=request.source.s3_uri if request.source else "",
                options=resolve_options(request, self.settings),
                created_at=now,
                updated_at=now,
                expires_at=int(time.time()) + self.settings.job_ttl_days * 86400,
            )
        )

    def _invoke(self, function: str, event: dict[str, Any]) -> Any:
        name = self.functions[function].name
        out = self.lambdas.invoke(FunctionName=name, Payload=json.dumps(event).encode())
        payload = json.loads(out["Payload"].read() or b"null")
        if out.get("FunctionError"):
            raise SeedError(
                f"seeding {event.get('job_id')}: {function} failed: "
                f"{payload.get('errorType')}: {payload.get('errorMessage')}"
            )
        return payload
