"""The facts both sides of a boundary agree on, written once (docs/ARCHITECTURE.md, "Contracts").

The Lambda layer, the CLI, the local cloud, the benchmarks and the tests import these instead of
copying them. Standard library only, so anything can import it: job-id rules per entry path, the
execution name and ARN, the job statuses, the S3 prefixes and keys of a job (`JobPaths`), the
input formats, the webhook names (Standard Webhooks), the vector index's keys and metadata,
the asynchronous inference names (inference ids, S3 prefixes, error names), and the template's
function names.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Literal

# ---------------------------------------------------------------------- job statuses
JobStatus = Literal["QUEUED", "RUNNING", "SUCCEEDED", "PARTIAL", "FAILED"]
NON_TERMINAL_STATUSES: tuple[JobStatus, ...] = ("QUEUED", "RUNNING")
TERMINAL_STATUSES: frozenset[str] = frozenset({"SUCCEEDED", "PARTIAL", "FAILED"})

# ---------------------------------------------------------------------- job ids
# uuid5 namespace of every deterministic job id: changing it renames every future job.
JOB_NAMESPACE = uuid.UUID("6b1f8a52-3c1e-4f0a-9d7e-2a4b5c6d7e8f")


def deterministic_job_id(kind: str, key: str) -> str:
    """`uuid5(NS, f"{kind}:{key}")`: the same entry-point input always names the same job."""
    return str(uuid.uuid5(JOB_NAMESPACE, f"{kind}:{key}"))


def api_job_id(idempotency_key: str) -> str:
    """POST /v1/jobs with an `Idempotency-Key` (without one the job id is random)."""
    return deterministic_job_id("api", idempotency_key)


def s3_job_id(bucket: str, key: str, revision: str) -> str:
    """An `inbox/` upload: one job per stored object version (version id, else ETag)."""
    return deterministic_job_id("s3", f"{bucket}/{key}@{revision}")


def sqs_job_id(message_id: str) -> str:
    """A job-queue message without its own `job_id`: named by the SQS MessageId."""
    return deterministic_job_id("sqs", message_id)


def retry_job_id(job_id: str, idempotency_key: str | None = None) -> str:
    """POST /v1/jobs/{id}/retry: one retry job per original (and per Idempotency-Key)."""
    return deterministic_job_id(
        "retry", job_id if idempotency_key is None else f"{job_id}:{idempotency_key}"
    )


def s3_revision(version_id: str | None, etag: str) -> str:
    """The revision an S3 job id hashes: the version id when versioning gives one, else ETag."""
    return version_id if version_id and version_id != "null" else etag.strip('"')


# ---------------------------------------------------------------------- entry paths, workflows
EntryPath = Literal["api", "s3", "sqs"]
ENTRY_PATHS: tuple[EntryPath, ...] = ("api", "s3", "sqs")
# Which state machine runs a job (recorded on the job): Standard, or Express for small jobs
Workflow = Literal["standard", "express"]
WORKFLOWS: tuple[Workflow, ...] = ("standard", "express")
EXPRESS_MAX_DURATION_S = 300  # an Express execution ends within 5 minutes, whatever happens


# ---------------------------------------------------------------------- executions
def execution_name(job_id: str) -> str:
    """A job's execution is named by its job id: a second guard against a duplicate job."""
    return job_id


def execution_arn(state_machine_arn: str, job_id: str) -> str:
    """The ARN of a job's Standard execution, derived from its state machine's ARN. (An Express
    execution's ARN also holds a random id: only StartExecution's answer gives it.)"""
    return (
        state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + execution_name(job_id)
    )


def is_express_execution(arn: str) -> bool:
    """An Express execution's ARN: `arn:<partition>:states:<region>:<account>:express:<state
    machine>:<name>:<id>` (a Standard one has `:execution:` there)."""
    parts = arn.split(":")
    return len(parts) > 5 and parts[5] == "express"


# ---------------------------------------------------------------------- S3 layout
INBOX_PREFIX = "inbox/"  # an object created here becomes a job (source "s3")
JOBS_PREFIX = "jobs/"  # everything of one job lives under jobs/{job_id}/

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")


def is_inbox_key(key: str) -> bool:
    """An inbox upload that is a document (a key ending in "/" is a folder placeholder)."""
    return key.startswith(INBOX_PREFIX) and not key.endswith("/")


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` → (bucket, key); raises ValueError for anything else."""
    match = _S3_URI.match(uri)
    if (
        match is None
        or "\x00" in uri
        or not utf8_encodable(uri)
        or len(match["key"].encode()) > 1024
    ):
        raise ValueError(f"not an s3 uri: {uri!r}")
    return match["bucket"], match["key"]


def utf8_encodable(text: str) -> bool:
    """False for text holding lone surrogates (JSON can carry them; UTF-8 and S3 cannot)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class JobPaths:
    """The S3 keys of one job in the data bucket (docs/CONTRACTS.md, "S3 keys")."""

    def __init__(self, bucket: str, job_id: str) -> None:
        self.bucket = bucket
        self.job_id = job_id
        self.prefix = f"{JOBS_PREFIX}{job_id}"

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}"

    def uri(self, rel: str) -> str:
        return s3_uri(self.bucket, self.key(rel))

    input_documents = "input/documents.jsonl"
    # preprocess -> the Map and deliver
    batch_manifest = "batches/manifest.json"  # counts only: {job_id, batch_count, chunks, ...}
    batch_items = "batches/items.json"  # the Distributed Map's ItemReader input (a JSON array)
    batch_list = "batches/batches.jsonl"  # {index, rows, unique} per batch
    batch_documents = (
        "batches/documents.jsonl"  # {id, chunks, first_batch, last_batch} per document
    )
    document_failures = "batches/failures.jsonl"  # documents rejected by preprocess, with reasons
    batch_failed_prefix = "batches/failed/"  # {index, reason} per batch that failed in the Map
    # {id, reason} per document that a batch could not put into the vector index (collect)
    batch_unindexed_prefix = "batches/unindexed/"
    # deliver -> the user
    result_manifest = "result/manifest.json"
    result_documents = "result/documents.jsonl"  # {id, chunks, status} per document
    result_failures = "result/failures.jsonl"  # {id, reason} per failed document
    result_shards = "result/shards.jsonl"  # {index, rows, vectors_jsonl, vectors_npy} per shard
    shard_prefix = "result/shards/"

    @staticmethod
    def batch_inputs(index: int) -> str:
        """The endpoint's claim-check input: `{chunk_id, text}` per unique text of the batch."""
        return f"batches/batch-{index:05d}.jsonl"

    @staticmethod
    def batch_rows(index: int) -> str:
        """Every chunk placed in the batch: `{chunk_id, document_id, chunk_index, row}`."""
        return f"batches/rows-{index:05d}.jsonl"

    @staticmethod
    def batch_request(index: int) -> str:
        """Async mode: the claim-check body `{inputs_uri, outputs_uri}` as InvokeEndpointAsync's
        InputLocation (the same for every try of the batch)."""
        return f"batches/request-{index:05d}.json"

    @staticmethod
    def batch_outputs(index: int) -> str:
        """The endpoint's output: float32 `[unique, dims]`, rows in input order."""
        return f"outputs/batch-{index:05d}.npy"

    @classmethod
    def batch_failed(cls, index: int) -> str:
        return f"{cls.batch_failed_prefix}batch-{index:05d}.json"

    @classmethod
    def batch_unindexed(cls, index: int) -> str:
        return f"{cls.batch_unindexed_prefix}batch-{index:05d}.jsonl"

    @classmethod
    def shard_jsonl(cls, index: int) -> str:
        """Result vectors of one batch: `{chunk_id, document_id, chunk_index, embedding}`."""
        return f"{cls.shard_prefix}vectors-{index:05d}.jsonl"

    @classmethod
    def shard_npy(cls, index: int) -> str:
        """The same rows as float32 `[rows, dims]`, in the shard's JSONL order."""
        return f"{cls.shard_prefix}vectors-{index:05d}.npy"

    @staticmethod
    def index_of(key: str) -> int | None:
        """The batch index in a batch/shard/failure key (`...-00042.ext`), or None."""
        match = _INDEXED.search(key)
        return int(match["index"]) if match else None


_INDEXED = re.compile(r"-(?P<index>\d{5,})\.[a-z]+$")


# ---------------------------------------------------------------------- input formats
InputFormat = Literal["jsonl", "json", "text"]


def input_format(key: str) -> InputFormat:
    """How an input object is read, by its name: `.jsonl` is one `{"id","text"}` per line,
    `.json` is `{"documents": [...]}`, anything else is one document named by its basename."""
    lower = key.rsplit("/", 1)[-1].lower()
    if lower.endswith(".jsonl"):
        return "jsonl"
    if lower.endswith(".json"):
        return "json"
    return "text"


# ---------------------------------------------------------------------- failure reasons
# A failed document's reason (free text, named in `result/failures.jsonl`) by class, for metrics:
# the first prefix that matches wins. Few classes on purpose (a metric dimension).
FAILURE_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("endpoint", ("batch failed",)),  # the endpoint call failed (transient: retryable)
    ("batch_output", ("batch output",)),  # its output was missing or wrong (retryable)
    ("encoding", ("invalid UTF-8", "invalid UTF-16")),
    ("bad_text", ("text contains",)),  # NUL bytes, unpaired surrogates
    ("malformed", ("malformed JSON", "expected ", "'id' must", "'text' must")),
    ("duplicate_id", ("duplicate document id",)),
    ("empty", ("empty document",)),
)
FAILURE_CLASS_NAMES: tuple[str, ...] = (*(name for name, _ in FAILURE_CLASSES), "other")


def failure_class(reason: str) -> str:
    """The class of a document's failure reason (`FAILURE_CLASS_NAMES`)."""
    for name, prefixes in FAILURE_CLASSES:
        if reason.startswith(prefixes):
            return name
    return "other"


# ---------------------------------------------------------------------- the vector index
# Amazon S3 Vectors (template: VectorBucket, VectorIndex). Every embedded chunk is one vector under
# a deterministic key, so a retry or a re-run overwrites it instead of adding a second one.
VECTOR_TEXT_KEY = "text"  # the chunk's text: the index's one non-filterable metadata key
VECTOR_FILTER_KEYS = ("document_id", "job_id")  # filterable metadata (chunk_index is too)


def vector_key(document_id: str, chunk_index: int) -> str:
    """`{document_id}#{chunk_index}`: a chunk's key in the vector index (its `chunk_id`)."""
    return f"{document_id}#{chunk_index}"


# ---------------------------------------------------------------------- webhooks
# Standard Webhooks 1.0 (standardwebhooks.com): a symmetric secret is "whsec_" + the base64 of
# 24 to 64 random bytes; receivers' libraries (`standardwebhooks.Webhook(secret)`) take it as is.
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
WEBHOOK_KEY_BYTES = (24, 64)
WEBHOOK_SECRET_FORMAT = (
    f"a Standard Webhooks secret: '{WEBHOOK_SECRET_PREFIX}' followed by the base64 of "
    f"{WEBHOOK_KEY_BYTES[0]} to {WEBHOOK_KEY_BYTES[1]} random bytes"
)
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def webhook_secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret (the bytes its base64 encodes); ValueError otherwise."""
    encoded = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    if encoded == secret or not _BASE64.match(encoded):
        raise ValueError(f"webhook_secret must be {WEBHOOK_SECRET_FORMAT}")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"webhook_secret must be {WEBHOOK_SECRET_FORMAT}") from exc
    low, high = WEBHOOK_KEY_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"webhook_secret must be {WEBHOOK_SECRET_FORMAT}; it has {len(key)} bytes")
    return key


def webhook_event_type(status: str) -> str:
    """The webhook payload's `type` of a finished job: `job.succeeded|job.partial|job.failed`."""
    return f"job.{status.lower()}"


def webhook_message_id(job_id: str, event_type: str) -> str:
    """`webhook-id` of one event: the same on every retry of it, different for every other
    event, and free of "." (the spec signs `{id}.{timestamp}.{body}`)."""
    return "msg_" + uuid.uuid5(JOB_NAMESPACE, f"webhook:{job_id}:{event_type}").hex


# ---------------------------------------------------------------------- asynchronous inference
# EndpointMode=async (docs/CONTRACTS.md, "Asynchronous inference"). SageMaker writes each
# inference's response under the output prefix and a failed one's under the failure prefix of
# the data bucket (the endpoint config's AsyncInferenceConfig.OutputConfig).
ASYNC_OUTPUT_PREFIX = "async/output/"
ASYNC_FAILURE_PREFIX = "async/failures/"
INFERENCE_ID_MAX = 64  # InvokeEndpointAsync's InferenceId: 1 to 64 printable characters

# The errors the complete function (or its sweep) fails a batch's task with, by class; the
# state machine retries all but the client error (statemachine/pipeline.asl.json).
ASYNC_SERVER_ERROR = "Tandem.ModelServerError"  # the container answered 5xx: retried
ASYNC_CLIENT_ERROR = "Tandem.ModelClientError"  # the container answered 4xx: the batch's failure
ASYNC_INFERENCE_FAILED = "Tandem.InferenceFailed"  # no answer (timeout, expiry, instance lost)
ASYNC_INFERENCE_LOST = "Tandem.InferenceLost"  # no result and no notification by the deadline


def inference_id(job_id: str, index: int, retry: int) -> str:
    """The InferenceId of one try of one batch: `{job_id}-{index:05d}-{retry}` (the retry is the
    task's `$$.State.RetryCount`: each try has its own task token, hence its own id)."""
    value = f"{job_id}-{index:05d}-{retry}"
    if len(value) > INFERENCE_ID_MAX:
        raise ValueError(f"inference id longer than {INFERENCE_ID_MAX}: {value!r}")
    return value


# ---------------------------------------------------------------------- functions
# The template's functions (logical ids), in pipeline order; locally each is `<stack>-<id>`.
FUNCTIONS: tuple[str, ...] = (
    "ApiFunction",
    "IngestFunction",
    "PreprocessFunction",
    "CollectFunction",
    "DeliverFunction",
    "FailFunction",
    "WatchdogFunction",
    "WebhookFunction",
    "SubmitFunction",  # EndpointMode=async only: a batch -> InvokeEndpointAsync, its token kept
    "CompleteFunction",  # EndpointMode=async only: the SNS notification -> SendTask*; the sweep
)
ASYNC_FUNCTIONS: tuple[str, ...] = ("SubmitFunction", "CompleteFunction")
