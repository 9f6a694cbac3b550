"""Typed records: API requests/responses, job records, state-machine payloads.

Every model here is a `msgspec.Struct` derived from this module's `Model`, not a pydantic model:
importing pydantic costs a Lambda handler about a third of `import boto3` before any model is
defined, and msgspec about a fortieth (docs/BENCHMARKS.md, "Lambda handlers"). `Model` keeps the
method names the code and its readers know from pydantic (`model_validate`, `model_validate_json`,
`model_dump`, `model_copy`), each one line of msgspec:

- `Model.model_validate(data)` checks types and constraints (`Meta(ge=..., max_length=...)`) and
  runs `__post_init__` (the cross-field checks); it raises `ValidationError` (msgspec's), whose
  message ends with where the problem is (`... - at `$.options.chunk_tokens``):
  `validation_errors` turns it into pydantic-style `{"type", "loc", "msg"}` dicts.
- Numbers given as strings are accepted, as pydantic's lax mode did (`strict=False`); a bool is
  never an int. A string with a lone surrogate (not Unicode, so never UTF-8) is refused anywhere
  in the data, each one reported (`UnencodableText`), as pydantic refused them.
- Constructing a model directly (`JobRecord(...)`) does not check constraints: code builds its
  own records; everything from outside (requests, messages, events, table items) goes through
  `model_validate`.
"""

import re
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias

import msgspec
from msgspec import Meta, ValidationError, field

from tandem_common.contracts import (
    TERMINAL_STATUSES,
    WEBHOOK_SECRET_FORMAT,
    EntryPath,
    JobStatus,
    Workflow,
    utf8_encodable,
    webhook_secret_key,
)

__all__ = ["TERMINAL_STATUSES", "JobStatus", "Meta", "Model", "ValidationError", "field"]


class Model(msgspec.Struct, kw_only=True):
    """A record with pydantic's method names (see the module doc). Subclass options: msgspec's
    (`forbid_unknown_fields=True`, `frozen=True`, ...)."""

    # fields left out of `model_dump` (internal flags a step's output must not carry)
    dump_exclude: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def model_validate(cls, data: object) -> Self:
        if where := _lone_surrogates(data):
            raise UnencodableText(where)
        return msgspec.convert(data, cls, strict=False)

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Self:
        """Like `model_validate`; text that is not JSON is a ValidationError too."""
        try:
            return msgspec.json.decode(data, type=cls, strict=False)
        except ValidationError:
            raise
        except msgspec.DecodeError as exc:
            raise ValidationError(str(exc)) from None

    def model_dump(self, *, mode: str = "python", exclude_none: bool = False) -> dict[str, Any]:
        """Plain dicts and lists, JSON-ready (`mode` is accepted for pydantic's callers)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        for name in self.dump_exclude:
            out.pop(name, None)
        return _without_none(out) if exclude_none else out

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Self:
        return msgspec.structs.replace(self, **(update or {}))


class UnencodableText(ValidationError):
    """Strings with a lone surrogate (JSON's `\\ud800` escapes, say): not Unicode text, so never
    UTF-8 either. Every such string is reported, at its place (`locations`)."""

    MESSAGE = "not valid Unicode text: it has a lone surrogate (U+D800 to U+DFFF)"

    def __init__(self, locations: list[tuple[str | int, ...]]) -> None:
        super().__init__(f"{self.MESSAGE} - at {len(locations)} place(s)")
        self.locations = locations


def _lone_surrogates(value: object, at: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Where `value` (parsed JSON) holds a string, or a key, that cannot be encoded as UTF-8."""
    if isinstance(value, str):
        return [] if value.isascii() or utf8_encodable(value) else [at]
    found: list[tuple[str | int, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not utf8_encodable(key):
                found.append((*at, key))
            found += _lone_surrogates(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _lone_surrogates(item, (*at, i))
    return found


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """msgspec's error (it reports the first problem) as pydantic-style dicts: `type` (`missing`,
    `extra_forbidden`, `invalid_input`, `string_unicode` or `invalid`), `loc` (field names and
    list indexes) and `msg`."""
    if isinstance(exc, InvalidInput):
        return [{"type": "invalid_input", "loc": ("input",), "msg": str(exc)}]
    if isinstance(exc, UnencodableText):
        return [
            {"type": "string_unicode", "loc": loc, "msg": UnencodableText.MESSAGE}
            for loc in exc.locations
        ]
    found = _AT.match(str(exc))
    assert found is not None  # the pattern matches any text
    msg, path = found["msg"], found["path"] or ""
    loc: list[str | int] = [name or int(index) for name, index in _STEP.findall(path)]
    kind = "invalid"
    if (missing := _MISSING.match(msg)) is not None:
        kind, msg = "missing", "Field required"
        loc.append(missing["name"])
    elif (unknown := _UNKNOWN.match(msg)) is not None:
        kind, msg = "extra_forbidden", "Extra inputs are not permitted"
        loc.append(unknown["name"])
    return [{"type": kind, "loc": tuple(loc), "msg": msg}]


JobSource: TypeAlias = EntryPath

DocumentId = Annotated[str, Meta(min_length=1, max_length=256)]
S3Uri = Annotated[str, Meta(pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+$")]


class _Strict(Model, kw_only=True, forbid_unknown_fields=True):
    pass


class Document(_Strict, kw_only=True):
    id: DocumentId
    text: Annotated[str, Meta(max_length=1_000_000)]


class Source(_Strict, kw_only=True):
    s3_uri: S3Uri


class JobOptions(_Strict, kw_only=True):
    """Per-job options; unset fields take the deployment defaults (see `resolve`)."""

    chunk_tokens: Annotated[int, Meta(ge=32, le=256)] | None = None
    chunk_overlap: Annotated[int, Meta(ge=0, le=128)] | None = None
    batch_size: Annotated[int, Meta(ge=1, le=256)] | None = None
    webhook_url: Annotated[str, Meta(max_length=2048)] | None = None
    webhook_secret: (
        Annotated[
            str, Meta(max_length=256, description=f"Signs the webhook: {WEBHOOK_SECRET_FORMAT}")
        ]
        | None
    ) = None

    def __post_init__(self) -> None:
        if self.webhook_secret is not None:
            webhook_secret_key(self.webhook_secret)  # ValueError naming the expected format
        if (
            self.chunk_tokens is not None
            and self.chunk_overlap is not None
            and self.chunk_overlap > self.chunk_tokens // 2
        ):
            raise ValueError("chunk_overlap must be at most chunk_tokens / 2")
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("webhook_secret is required with webhook_url")


class ResolvedOptions(Model, kw_only=True):
    """The options a job runs with (stored on the job record, secrets excluded)."""

    chunk_tokens: int
    chunk_overlap: int
    batch_size: int


Documents = Annotated[list[Document], Meta(min_length=1, max_length=10_000)]


class JobCreate(_Strict, kw_only=True):
    """POST /v1/jobs body: inline `documents` or a `source`; exactly one of them."""

    documents: Documents | None = None
    source: Source | None = None
    options: JobOptions = field(default_factory=JobOptions)

    def __post_init__(self) -> None:
        if (self.documents is None) == (self.source is None):
            raise ValueError("give exactly one of documents or source")


class QueueMessage(_Strict, kw_only=True):
    """An SQS job message: a JobCreate-shaped body, or `{"s3_uri"}`, optionally with `job_id`."""

    job_id: Annotated[str, Meta(pattern=r"^[0-9a-f-]{36}$")] | None = None
    documents: Documents | None = None
    source: Source | None = None
    s3_uri: S3Uri | None = None
    options: JobOptions = field(default_factory=JobOptions)

    def __post_init__(self) -> None:
        given = [x for x in (self.documents, self.source, self.s3_uri) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of documents, source or s3_uri")

    def as_job_create(self) -> JobCreate:
        source = self.source or (Source(s3_uri=self.s3_uri) if self.s3_uri else None)
        return JobCreate(documents=self.documents, source=source, options=self.options)


class Counts(Model, kw_only=True):
    documents: int = 0
    chunks: int = 0
    embedded: int = 0
    failed: int = 0


class ErrorInfo(Model, kw_only=True):
    code: str
    message: str


class Progress(Model, kw_only=True):
    """Batches of the job's Map done (embedded or failed) of its total, while it runs."""

    batches: int = 0
    batches_done: int = 0


class DocumentFailure(Model, kw_only=True):
    id: str
    reason: str


WebhookState = Literal["pending", "delivered", "failed", "stopped"]


class WebhookOutcome(Model, kw_only=True):
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


class JobRecord(Model, kw_only=True):
    """One item of the jobs table."""

    job_id: str
    status: JobStatus
    source: JobSource
    input_uri: str
    options: ResolvedOptions
    counts: Counts = field(default_factory=Counts)
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


class JobLinks(Model, kw_only=True):
    self: str


class JobAccepted(Model, kw_only=True):
    job_id: str
    status: JobStatus
    links: JobLinks


class Timings(Model, kw_only=True):
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None


class Downloads(Model, kw_only=True):
    """Presigned GETs of a finished job's result files; the vectors are in shards, listed by
    `shards` and fetched with `GET /v1/jobs/{id}/shards`."""

    manifest: str | None = None
    documents: str | None = None
    failures: str | None = None
    shards: str | None = None


class JobView(Model, kw_only=True):
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


class ShardLink(Model, kw_only=True):
    index: int
    rows: int
    vectors_jsonl: str  # presigned GET
    vectors_npy: str  # presigned GET


class ShardPage(Model, kw_only=True):
    """GET /v1/jobs/{id}/shards: a page of the result shards, in batch order."""

    job_id: str
    total: int
    shards: list[ShardLink]
    next_start: int | None = None


class RetryAccepted(Model, kw_only=True):
    """POST /v1/jobs/{id}/retry response: the retry job, and what was left out and why."""

    job_id: str
    status: JobStatus
    retry_of: str
    documents: int  # documents in the retry job
    skipped: list[DocumentFailure] = []  # failed documents not retried (permanent), first 100
    skipped_count: int = 0
    links: JobLinks


class UploadRequest(_Strict, kw_only=True):
    filename: Annotated[str, Meta(min_length=1, max_length=200)]
    content_type: Annotated[str, Meta(max_length=100)] = "application/octet-stream"


class UploadTicket(Model, kw_only=True):
    upload_url: str
    method: Literal["PUT"] = "PUT"
    s3_uri: str
    expires_in: int
    headers: dict[str, str]


# --- search: POST /v1/search, DELETE /v1/documents/{id} ---------------------------------------

SEARCH_MAX_TOP_K = 100  # S3 Vectors' limit per QueryVectors request
SEARCH_MAX_FILTER_IDS = 100
FilterIds = (
    DocumentId | Annotated[list[DocumentId], Meta(min_length=1, max_length=SEARCH_MAX_FILTER_IDS)]
)


class SearchFilter(_Strict, kw_only=True):
    """Only chunks of these documents and/or jobs (a string or a list: any of them)."""

    document_id: FilterIds | None = None
    job_id: FilterIds | None = None


class SearchRequest(_Strict, kw_only=True):
    query: Annotated[str, Meta(min_length=1, max_length=8192)]
    top_k: Annotated[int, Meta(ge=1, le=SEARCH_MAX_TOP_K)] = 10
    filter: SearchFilter | None = None


class SearchHit(Model, kw_only=True):
    document_id: str
    chunk_index: int
    # 1 - the index's cosine distance, i.e. the cosine similarity of query and chunk (-1 to 1)
    score: float
    text: str
    job_id: str  # the job that indexed this chunk


class SearchResponse(Model, kw_only=True):
    """Nearest chunks first."""

    model: str
    results: list[SearchHit]


class DocumentDeleted(Model, kw_only=True):
    """DELETE /v1/documents/{id}: `found` false when the index held nothing of it (a repeat)."""

    document_id: str
    found: bool
    vectors: int  # keys deleted from the vector index


# --- OpenAI-compatible routes: /v1/embeddings, /v1/models ------------------------------------

EMBEDDINGS_MAX_INPUTS = 256  # a request's texts; more go through a job (POST /v1/jobs)
NonEmptyText = Annotated[str, Meta(min_length=1)]
TEXT_ONLY_MESSAGE = (
    "Token arrays are not supported: send text. The model has its own WordPiece tokenizer and "
    "cannot read another tokenizer's token ids (with LangChain's OpenAIEmbeddings, set "
    "check_embedding_ctx_length=False)."
)


class InvalidInput(ValidationError):
    """A problem with `input`, worded for the client already (the OpenAI routes pass it on as
    is): `validation_errors` gives it the type `invalid_input`."""


def _is_token_array(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, int) and not isinstance(x, bool) for x in value
    )


def _check_input(value: object) -> None:
    """One clear error per bad input, naming its index (the schema types say the same)."""
    if isinstance(value, str):
        if not value.strip():
            raise InvalidInput("input must not be empty or only whitespace")
        return
    if not isinstance(value, list):
        raise InvalidInput("input must be a string or a list of strings")
    if not value:
        raise InvalidInput("input must not be an empty list")
    if _is_token_array(value):
        raise InvalidInput(TEXT_ONLY_MESSAGE)
    if len(value) > EMBEDDINGS_MAX_INPUTS:
        raise InvalidInput(
            f"input has {len(value)} items, at most {EMBEDDINGS_MAX_INPUTS} per request; "
            "send larger sets as a job (POST /v1/jobs)"
        )
    for i, text in enumerate(value):
        if _is_token_array(text):
            raise InvalidInput(f"input[{i}] is a token array. {TEXT_ONLY_MESSAGE}")
        if not isinstance(text, str):
            raise InvalidInput(f"input[{i}] must be a string")
        if not text.strip():
            raise InvalidInput(f"input[{i}] must not be empty or only whitespace")


class EmbeddingsRequest(Model, kw_only=True):
    """OpenAI's `POST /v1/embeddings` body. `user` and fields this model does not name are
    accepted and ignored; `model` and `dimensions` are checked against the served model by the
    route (settings.ServedModel)."""

    input: (
        NonEmptyText
        | Annotated[list[NonEmptyText], Meta(min_length=1, max_length=EMBEDDINGS_MAX_INPUTS)]
    )
    model: str | None = None
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Meta(ge=1)] | None = None
    user: str | None = None

    @classmethod
    def model_validate(cls, data: object) -> Self:
        """`input` is checked first, with its own messages (InvalidInput); `encoding_format`
        names what it may be; `dimensions` must be a JSON integer (not "384", not true)."""
        if isinstance(data, dict):
            if "input" in data:
                _check_input(data["input"])
            fmt = data.get("encoding_format")
            if fmt is not None and fmt not in ("float", "base64"):
                raise ValidationError("must be 'float' or 'base64' - at `$.encoding_format`")
            dims = data.get("dimensions")
            if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int)):
                raise ValidationError("Expected `int` - at `$.dimensions`")
        return super().model_validate(data)

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


class EmbeddingItem(Model, kw_only=True):
    object: Literal["embedding"] = "embedding"
    index: int
    # floats, or with encoding_format "base64" the base64 of the little-endian float32 bytes
    embedding: list[float] | str


class EmbeddingsUsage(Model, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(Model, kw_only=True):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingsUsage


class ModelCard(Model, kw_only=True):
    """OpenAI's model object (`GET /v1/models/{model}`)."""

    id: str
    object: Literal["model"] = "model"
    created: int  # Unix seconds; 0: Tandem does not know when the weights were made
    owned_by: str


class ModelList(Model, kw_only=True):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorInfo(Model, kw_only=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(Model, kw_only=True):
    """Errors of the OpenAI-compatible routes: `{"error": {"message", "type", "param", "code"}}`,
    so the OpenAI SDKs raise their typed errors with the message."""

    error: OpenAIErrorInfo


# --- state machine payloads -------------------------------------------------------------------


class ExecutionInput(Model, kw_only=True):
    job_id: str
    execution_arn: str = ""  # the running execution's ARN (the Preprocess state passes it)


class BatchRef(Model, kw_only=True):
    index: int
    inputs_uri: str
    outputs_uri: str


class BatchRequest(Model, kw_only=True):
    """The claim-check body of one endpoint call."""

    inputs_uri: str
    outputs_uri: str


class PreprocessResult(Model, kw_only=True):
    job_id: str
    batch_count: int
    manifest_uri: str
    items_key: str  # S3 key (data bucket) of the batch list as a JSON array: the ItemReader input
    max_concurrency: int  # the Map's MaxConcurrencyPath
    # on Express only: "standard", the job was handed to the Standard workflow; "done", it had
    # finished already (a repeated Express execution)
    mode: Literal["inline", "distributed", "standard", "done"]
    batches: list[BatchRef]


class StepError(Model, kw_only=True):
    Error: str = "Unknown"
    Cause: str | None = None


class BatchResult(Model, kw_only=True):
    index: int
    ok: bool
    error: StepError | None = None


class DeliverInput(Model, kw_only=True):
    """`batch_results` is optional: failure reasons come from the Map children's failure
    records in S3; a result given here is used only for a batch that left none."""

    job_id: str
    batch_results: list[BatchResult] = []


class BatchTiming(Model, kw_only=True):
    """Kept by the Map child's InvokeEndpoint state when the call succeeds."""

    sent_at: str  # ISO-8601: when the InvokeEndpoint state was entered ($$.State.EnteredTime)


class CollectInput(Model, kw_only=True):
    """One Map child's batch, after its endpoint call: `error` is set when that call failed;
    `attempt` counts the container 5xx retries the child made."""

    job_id: str
    index: int
    attempt: int = 0
    request: BatchRequest
    error: StepError | None = None
    timing: BatchTiming | None = None


class CollectResult(Model, kw_only=True):
    dump_exclude: ClassVar[frozenset[str]] = frozenset({"written"})

    index: int
    ok: bool
    rows: int = 0
    reason: str | None = None
    # this call wrote the batch's shard or failure record (not in the step's output)
    written: bool = False


class DeliverResult(Model, kw_only=True):
    job_id: str
    status: JobStatus
    counts: Counts
    manifest_uri: str


class FailInput(Model, kw_only=True):
    job_id: str
    error: StepError = field(default_factory=StepError)


class FailResult(Model, kw_only=True):
    job_id: str
    status: JobStatus


# --- asynchronous inference (EndpointMode=async) ----------------------------------------------


class SubmitInput(Model, kw_only=True):
    """The async Map step's payload to the submit function (`lambda:invoke.waitForTaskToken`):
    the child's batch, the task token, and `$$.State.RetryCount` (which try this is)."""

    job_id: str
    index: Annotated[int, Meta(ge=0)]
    request: BatchRequest
    task_token: Annotated[str, Meta(min_length=1)]
    retry: Annotated[int, Meta(ge=0)] = 0


class SubmitResult(Model, kw_only=True):
    inference_id: str
    input_location: str
    output_location: str
    failure_location: str | None = None


InferenceState = Literal["pending", "succeeded", "failed", "abandoned"]


class InferenceRecord(Model, kw_only=True):
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


class AsyncNotification(Model, kw_only=True):
    """SageMaker's asynchronous inference notification (the SNS message): the fields Tandem
    reads (by their camelCase names); any others are ignored."""

    inference_id: Annotated[str, Meta(min_length=1)] = field(name="inferenceId")
    invocation_status: str = field(name="invocationStatus")
    failure_reason: str | None = field(default=None, name="failureReason")
    response_parameters: dict[str, Any] = field(default_factory=dict, name="responseParameters")

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


class CompleteReport(Model, kw_only=True):
    """What the complete function did with a batch of notifications, or with one sweep."""

    succeeded: int = 0  # tasks resumed with SendTaskSuccess
    failed: int = 0  # tasks failed with SendTaskFailure (error by class)
    duplicate: int = 0  # the try's task was closed already: nothing done again
    unknown: int = 0  # not one of this stack's inferences, or not a notification: ignored
    checked: int = 0  # sweep: pending tries looked at
    heartbeats: int = 0  # sweep: tasks told their inference is still pending
    lost: int = 0  # sweep: tasks failed as lost (no result by their deadline)
