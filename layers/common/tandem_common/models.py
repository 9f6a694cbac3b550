"""Pydantic models: API requests/responses, job records, state-machine payloads.

Every model here derives from this module's `BaseModel`: pydantic's, with `defer_build=True`, so
a model's validator and serializer are built on its first use, not when a handler is imported:
each function builds the few models it uses and never the rest (docs/BENCHMARKS.md, "Lambda
handlers"). Defaults that are models are `default_factory`s for the same reason (an instance made
at import would build its model). Constraints are `Field(...)`s, also inside `Annotated`, not
`StringConstraints`/`StrictInt`: those live in `pydantic.types`, a module no function needs
otherwise. No `from __future__ import annotations` here: pydantic would evaluate every field's
annotation string again when the class is made (a quarter of this module's import time).
"""

from typing import Annotated, Any, Literal, TypeAlias

import pydantic
from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tandem_common.contracts import (
    TERMINAL_STATUSES,
    WEBHOOK_SECRET_FORMAT,
    EntryPath,
    JobStatus,
    Workflow,
    webhook_secret_key,
)

__all__ = ["TERMINAL_STATUSES", "JobStatus"]  # re-exported: the contracts are their home


class BaseModel(pydantic.BaseModel):
    """pydantic's BaseModel, built on first use (see the module doc)."""

    model_config = ConfigDict(defer_build=True)


JobSource: TypeAlias = EntryPath

DocumentId = Annotated[str, Field(min_length=1, max_length=256)]
S3Uri = Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Document(_Strict):
    id: DocumentId
    text: str = Field(max_length=1_000_000)


class Source(_Strict):
    s3_uri: S3Uri


class JobOptions(_Strict):
    """Per-job options; unset fields take the deployment defaults (see `resolve`)."""

    chunk_tokens: int | None = Field(default=None, ge=32, le=256)
    chunk_overlap: int | None = Field(default=None, ge=0, le=128)
    batch_size: int | None = Field(default=None, ge=1, le=256)
    webhook_url: Annotated[str, Field(max_length=2048)] | None = None
    webhook_secret: str | None = Field(
        default=None, max_length=256, description=f"Signs the webhook: {WEBHOOK_SECRET_FORMAT}"
    )

    @field_validator("webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: str | None) -> str | None:
        if value is not None:
            webhook_secret_key(value)  # ValueError naming the expected format
        return value

    @model_validator(mode="after")
    def _check(self) -> "JobOptions":
        if (
            self.chunk_tokens is not None
            and self.chunk_overlap is not None
            and self.chunk_overlap > self.chunk_tokens // 2
        ):
            raise ValueError("chunk_overlap must be at most chunk_tokens / 2")
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("webhook_secret is required with webhook_url")
        return self


class ResolvedOptions(BaseModel):
    """The options a job runs with (stored on the job record, secrets excluded)."""

    chunk_tokens: int
    chunk_overlap: int
    batch_size: int


class JobCreate(_Strict):
    """POST /v1/jobs body: inline `documents` or a `source`; exactly one of them."""

    documents: list[Document] | None = Field(default=None, min_length=1, max_length=10_000)
    source: Source | None = None
    options: JobOptions = Field(default_factory=JobOptions)

    @model_validator(mode="after")
    def _one_input(self) -> "JobCreate":
        if (self.documents is None) == (self.source is None):
            raise ValueError("give exactly one of documents or source")
        return self


class QueueMessage(BaseModel):
    """An SQS job message: a JobCreate-shaped body, or `{"s3_uri"}`, optionally with `job_id`."""

    model_config = ConfigDict(extra="forbid")

    job_id: Annotated[str, Field(pattern=r"^[0-9a-f-]{36}$")] | None = None
    documents: list[Document] | None = Field(default=None, min_length=1, max_length=10_000)
    source: Source | None = None
    s3_uri: S3Uri | None = None
    options: JobOptions = Field(default_factory=JobOptions)

    @model_validator(mode="after")
    def _one_input(self) -> "QueueMessage":
        given = [x for x in (self.documents, self.source, self.s3_uri) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of documents, source or s3_uri")
        return self

    def as_job_create(self) -> "JobCreate":
        source = self.source or (Source(s3_uri=self.s3_uri) if self.s3_uri else None)
        return JobCreate(documents=self.documents, source=source, options=self.options)


class Counts(BaseModel):
    documents: int = 0
    chunks: int = 0
    embedded: int = 0
    failed: int = 0


class ErrorInfo(BaseModel):
    code: str
    message: str


class Progress(BaseModel):
    """Batches of the job's Map done (embedded or failed) of its total, while it runs."""

    batches: int = 0
    batches_done: int = 0


class DocumentFailure(BaseModel):
    id: str
    reason: str


WebhookState = Literal["pending", "delivered", "failed", "stopped"]


class WebhookOutcome(BaseModel):
    """A job's webhook: on the job record and in GET /v1/jobs/{id} (never the URL's secret).

    `pending` until an attempt gets a 2xx (`delivered`), a 410 (`stopped`), or the last of
    `max_attempts` (the webhook function's schedule, set by the first attempt) fails
    (`failed`). Times are ISO-8601; `next_attempt_at` only while pending."""

    id: str  # the `webhook-id` header: the same on every attempt
    state: WebhookState = "pending"
    attempts: int = 0
    max_attempts: int | None = None
    last_status: int | None = None  # HTTP status of the last attempt (None: no response)
    last_error: str | None = None
    created_at: str
    first_attempt_at: str | None = None
    last_attempt_at: str | None = None
    next_attempt_at: str | None = None
    queued_attempt: int = 0  # the latest attempt put on the webhook queue


class JobRecord(BaseModel):
    """One item of the jobs table."""

    job_id: str
    status: JobStatus
    source: JobSource
    input_uri: str
    options: ResolvedOptions
    counts: Counts = Field(default_factory=Counts)
    progress: Progress | None = None
    failed_documents: list[DocumentFailure] = []
    manifest_uri: str | None = None
    error: ErrorInfo | None = None
    created_at: str
    updated_at: str
    started_at: str | None = None
    finished_at: str | None = None
    expires_at: int
    execution_arn: str | None = None
    workflow: Workflow = "standard"  # the state machine that runs the job (intake decides)
    webhook_url: str | None = None
    webhook_secret: str | None = None
    notified_at: str | None = None
    webhook: WebhookOutcome | None = None
    retry_of: str | None = None  # the job this one retries (POST /v1/jobs/{id}/retry)
    retries: list[str] = []  # ids of the retry jobs made from this one


class JobLinks(BaseModel):
    self: str


class JobAccepted(BaseModel):
    job_id: str
    status: JobStatus
    links: JobLinks


class Timings(BaseModel):
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None


class Downloads(BaseModel):
    """Presigned GETs of a finished job's result files; the vectors are in shards, listed by
    `shards` and fetched with `GET /v1/jobs/{id}/shards`."""

    manifest: str | None = None
    documents: str | None = None
    failures: str | None = None
    shards: str | None = None


class JobView(BaseModel):
    """GET /v1/jobs/{id} response (never carries the webhook secret)."""

    job_id: str
    status: JobStatus
    source: JobSource
    options: ResolvedOptions
    counts: Counts
    progress: Progress | None = None
    timings: Timings
    manifest_uri: str | None = None
    downloads: Downloads | None = None
    error: ErrorInfo | None = None
    failed_documents: list[DocumentFailure] = []
    retry_of: str | None = None
    retries: list[str] = []
    webhook: WebhookOutcome | None = None
    links: JobLinks


class ShardLink(BaseModel):
    index: int
    rows: int
    vectors_jsonl: str  # presigned GET
    vectors_npy: str  # presigned GET


class ShardPage(BaseModel):
    """GET /v1/jobs/{id}/shards: a page of the result shards, in batch order."""

    job_id: str
    total: int
    shards: list[ShardLink]
    next_start: int | None = None


class RetryAccepted(BaseModel):
    """POST /v1/jobs/{id}/retry response: the retry job, and what was left out and why."""

    job_id: str
    status: JobStatus
    retry_of: str
    documents: int  # documents in the retry job
    skipped: list[DocumentFailure] = []  # failed documents not retried (permanent), first 100
    skipped_count: int = 0
    links: JobLinks


class UploadRequest(_Strict):
    filename: Annotated[str, Field(min_length=1, max_length=200)]
    content_type: Annotated[str, Field(max_length=100)] = "application/octet-stream"


class UploadTicket(BaseModel):
    upload_url: str
    method: Literal["PUT"] = "PUT"
    s3_uri: str
    expires_in: int
    headers: dict[str, str]


# --- search: POST /v1/search, DELETE /v1/documents/{id} ---------------------------------------

SEARCH_MAX_TOP_K = 100  # S3 Vectors' limit per QueryVectors request
SEARCH_MAX_FILTER_IDS = 100
FilterIds = (
    DocumentId | Annotated[list[DocumentId], Field(min_length=1, max_length=SEARCH_MAX_FILTER_IDS)]
)


class SearchFilter(_Strict):
    """Only chunks of these documents and/or jobs (a string or a list: any of them)."""

    document_id: FilterIds | None = None
    job_id: FilterIds | None = None


class SearchRequest(_Strict):
    query: Annotated[str, Field(min_length=1, max_length=8192)]
    top_k: int = Field(default=10, ge=1, le=SEARCH_MAX_TOP_K)
    filter: SearchFilter | None = None


class SearchHit(BaseModel):
    document_id: str
    chunk_index: int
    # 1 - the index's cosine distance, i.e. the cosine similarity of query and chunk (-1 to 1)
    score: float
    text: str
    job_id: str  # the job that indexed this chunk


class SearchResponse(BaseModel):
    """Nearest chunks first."""

    model: str
    results: list[SearchHit]


class DocumentDeleted(BaseModel):
    """DELETE /v1/documents/{id}: `found` false when the index held nothing of it (a repeat)."""

    document_id: str
    found: bool
    vectors: int  # keys deleted from the vector index


# --- OpenAI-compatible routes: /v1/embeddings, /v1/models ------------------------------------

EMBEDDINGS_MAX_INPUTS = 256  # a request's texts; more go through a job (POST /v1/jobs)
NonEmptyText = Annotated[str, Field(min_length=1)]
TEXT_ONLY_MESSAGE = (
    "Token arrays are not supported: send text. The model has its own WordPiece tokenizer and "
    "cannot read another tokenizer's token ids (with LangChain's OpenAIEmbeddings, set "
    "check_embedding_ctx_length=False)."
)


def _bad_input(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_input", message)


def _is_token_array(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, int) and not isinstance(x, bool) for x in value
    )


class EmbeddingsRequest(BaseModel):
    """OpenAI's `POST /v1/embeddings` body. `user` and fields this model does not name are
    accepted and ignored; `model` and `dimensions` are checked against the served model by the
    route (settings.ServedModel)."""

    input: (
        NonEmptyText
        | Annotated[list[NonEmptyText], Field(min_length=1, max_length=EMBEDDINGS_MAX_INPUTS)]
    )
    model: str | None = None
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(strict=True, ge=1)] | None = None
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _texts_only(cls, value: object) -> object:
        """One clear error per bad input, naming its index (the schema types say the same)."""
        if isinstance(value, str):
            if not value.strip():
                raise _bad_input("input must not be empty or only whitespace")
            return value
        if not isinstance(value, list):
            raise _bad_input("input must be a string or a list of strings")
        if not value:
            raise _bad_input("input must not be an empty list")
        if _is_token_array(value):
            raise _bad_input(TEXT_ONLY_MESSAGE)
        if len(value) > EMBEDDINGS_MAX_INPUTS:
            raise _bad_input(
                f"input has {len(value)} items, at most {EMBEDDINGS_MAX_INPUTS} per request; "
                "send larger sets as a job (POST /v1/jobs)"
            )
        for i, text in enumerate(value):
            if _is_token_array(text):
                raise _bad_input(f"input[{i}] is a token array. {TEXT_ONLY_MESSAGE}")
            if not isinstance(text, str):
                raise _bad_input(f"input[{i}] must be a string")
            if not text.strip():
                raise _bad_input(f"input[{i}] must not be empty or only whitespace")
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    # floats, or with encoding_format "base64" the base64 of the little-endian float32 bytes
    embedding: list[float] | str


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingsUsage


class ModelCard(BaseModel):
    """OpenAI's model object (`GET /v1/models/{model}`)."""

    id: str
    object: Literal["model"] = "model"
    created: int  # Unix seconds; 0: Tandem does not know when the weights were made
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """Errors of the OpenAI-compatible routes: `{"error": {"message", "type", "param", "code"}}`,
    so the OpenAI SDKs raise their typed errors with the message."""

    error: OpenAIErrorInfo


# --- state machine payloads -------------------------------------------------------------------


class ExecutionInput(BaseModel):
    job_id: str
    execution_arn: str = ""  # the running execution's ARN (the Preprocess state passes it)


class BatchRef(BaseModel):
    index: int
    inputs_uri: str
    outputs_uri: str


class BatchRequest(BaseModel):
    """The claim-check body of one endpoint call."""

    inputs_uri: str
    outputs_uri: str


class PreprocessResult(BaseModel):
    job_id: str
    batch_count: int
    manifest_uri: str
    items_key: str  # S3 key (data bucket) of the batch list as a JSON array: the ItemReader input
    max_concurrency: int  # the Map's MaxConcurrencyPath
    # on Express only: "standard", the job was handed to the Standard workflow; "done", it had
    # finished already (a repeated Express execution)
    mode: Literal["inline", "distributed", "standard", "done"]
    batches: list[BatchRef]


class StepError(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    Error: str = "Unknown"
    Cause: str | None = None


class BatchResult(BaseModel):
    index: int
    ok: bool
    error: StepError | None = None


class DeliverInput(BaseModel):
    """`batch_results` is optional: failure reasons come from the Map children's failure
    records in S3; a result given here is used only for a batch that left none."""

    job_id: str
    batch_results: list[BatchResult] = []


class BatchTiming(BaseModel):
    """Kept by the Map child's InvokeEndpoint state when the call succeeds."""

    sent_at: str  # ISO-8601: when the InvokeEndpoint state was entered ($$.State.EnteredTime)


class CollectInput(BaseModel):
    """One Map child's batch, after its endpoint call: `error` is set when that call failed;
    `attempt` counts the container 5xx retries the child made."""

    job_id: str
    index: int
    attempt: int = 0
    request: BatchRequest
    error: StepError | None = None
    timing: BatchTiming | None = None


class CollectResult(BaseModel):
    index: int
    ok: bool
    rows: int = 0
    reason: str | None = None
    # this call wrote the batch's shard or failure record (not in the step's output)
    written: bool = Field(default=False, exclude=True)


class DeliverResult(BaseModel):
    job_id: str
    status: JobStatus
    counts: Counts
    manifest_uri: str


class FailInput(BaseModel):
    job_id: str
    error: StepError = Field(default_factory=StepError)


class FailResult(BaseModel):
    job_id: str
    status: JobStatus


# --- asynchronous inference (EndpointMode=async) ----------------------------------------------


class SubmitInput(BaseModel):
    """The async Map step's payload to the submit function (`lambda:invoke.waitForTaskToken`):
    the child's batch, the task token, and `$$.State.RetryCount` (which try this is)."""

    job_id: str
    index: int = Field(ge=0)
    request: BatchRequest
    task_token: str = Field(min_length=1)
    retry: int = Field(default=0, ge=0)


class SubmitResult(BaseModel):
    inference_id: str
    input_location: str
    output_location: str
    failure_location: str | None = None


InferenceState = Literal["pending", "succeeded", "failed", "abandoned"]


class InferenceRecord(BaseModel):
    """One try of one batch, in the inferences table (pk `inference_id`): its task token, where
    SageMaker will write its result, and until when it may take."""

    inference_id: str
    task_token: str
    job_id: str
    index: int
    state: InferenceState = "pending"
    submitted_at: str
    deadline: int  # epoch s: past it with no result the sweep fails the task as lost
    output_location: str | None = None
    failure_location: str | None = None
    closed_at: str | None = None
    expires_at: int  # TTL


class AsyncNotification(BaseModel):
    """SageMaker's asynchronous inference notification (the SNS message): the fields Tandem
    reads; any others are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    inference_id: str = Field(alias="inferenceId", min_length=1)
    invocation_status: str = Field(alias="invocationStatus")
    failure_reason: str | None = Field(default=None, alias="failureReason")
    response_parameters: dict[str, Any] = Field(default_factory=dict, alias="responseParameters")

    @property
    def succeeded(self) -> bool:
        return self.invocation_status == "Completed"

    @property
    def output_location(self) -> str | None:
        value = self.response_parameters.get("outputLocation")
        return value if isinstance(value, str) else None

    @property
    def failure_location(self) -> str | None:
        value = self.response_parameters.get("failureLocation")
        return value if isinstance(value, str) else None


class CompleteReport(BaseModel):
    """What the complete function did with a batch of notifications, or with one sweep."""

    succeeded: int = 0  # tasks resumed with SendTaskSuccess
    failed: int = 0  # tasks failed with SendTaskFailure (error by class)
    duplicate: int = 0  # the try's task was closed already: nothing done again
    unknown: int = 0  # not one of this stack's inferences, or not a notification: ignored
    checked: int = 0  # sweep: pending tries looked at
    heartbeats: int = 0  # sweep: tasks told their inference is still pending
    lost: int = 0  # sweep: tasks failed as lost (no result by their deadline)
