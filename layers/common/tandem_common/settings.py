"""Typed settings built once from the environment and validated at cold start.

Domain code receives a `Settings` instance; only this module reads `os.environ`. The settings are
frozen msgspec structs (models.py says why not pydantic): `Settings.from_mapping` validates the
environment's strings into them, each constraint a `Meta`, each cross-field rule a
`__post_init__`; a bad value is a `ValidationError` naming the setting.
"""

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated

import msgspec
from msgspec import Meta, field


class ResourceNames(msgspec.Struct, kw_only=True, frozen=True):
    """Names/ARNs of the AWS resources the functions talk to."""

    data_bucket: Annotated[str, Meta(min_length=3)]
    jobs_table: Annotated[str, Meta(min_length=1)]
    idempotency_table: str = ""
    state_machine_arn: str = ""  # the Standard workflow
    express_state_machine_arn: str = ""  # the Express workflow for small jobs ("" : none)
    endpoint_name: str = ""
    event_bus_name: str = "default"
    inference_table: str = ""  # EndpointMode=async: the task token of each try of a batch


class ChunkingDefaults(msgspec.Struct, kw_only=True, frozen=True):
    """Default job options (a job's own `options` override them)."""

    batch_size: Annotated[int, Meta(ge=1, le=256)] = 64
    chunk_tokens: Annotated[int, Meta(ge=32, le=256)] = 256
    chunk_overlap: Annotated[int, Meta(ge=0)] = 32
    inline_map_max_batches: Annotated[int, Meta(ge=1)] = 100
    map_max_concurrency: Annotated[int, Meta(ge=1, le=40)] = 8

    def __post_init__(self) -> None:
        if self.chunk_overlap > self.chunk_tokens // 2:
            raise ValueError("CHUNK_OVERLAP must be at most CHUNK_TOKENS / 2")


class WorkflowRouting(msgspec.Struct, kw_only=True, frozen=True):
    """Which workflow runs a job (template parameters `ExpressMaxBytes`, `ExpressMaxBatches`).

    A job whose input is known at intake to be at most `express_max_bytes` (an inline job's
    documents as JSONL; an S3 object's size) runs on the Express workflow; everything else on the
    Standard one. 0 turns Express off (e.g. when the endpoint is asynchronous: Express cannot
    wait for a callback). Preprocess hands an Express job with more than `express_max_batches`
    batches to the Standard workflow. The defaults come from `tandem cost` (README, "Cost").
    """

    express_max_bytes: Annotated[int, Meta(ge=0)] = 1024 * 1024
    express_max_batches: Annotated[int, Meta(ge=1, le=100)] = 32


# Seconds between webhook attempts: the Standard Webhooks spec's example schedule (about 3 days).
DEFAULT_WEBHOOK_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


class WebhookPolicy(msgspec.Struct, kw_only=True, frozen=True):
    """Where webhooks may go and how they are retried (template: `WebhookRetrySchedule`)."""

    allow_private_webhooks: bool = False
    webhook_queue_url: str = ""  # the webhook queue (attempts, with per-message DelaySeconds)
    # delays before attempt 2, 3, ...: one attempt more than delays; "5,300,..." in the env
    webhook_retry_schedule: Annotated[tuple[int, ...], Meta(max_length=30)] = (
        DEFAULT_WEBHOOK_RETRY_SCHEDULE
    )
    webhook_timeout_s: Annotated[float, Meta(gt=0, le=30)] = 15.0  # the spec: 15 to 30 s

    def __post_init__(self) -> None:
        if any(not 0 <= delay <= 7 * 86400 for delay in self.webhook_retry_schedule):
            raise ValueError("WEBHOOK_RETRY_SCHEDULE delays must be 0 to 604800 seconds")

    @property
    def max_attempts(self) -> int:
        return len(self.webhook_retry_schedule) + 1


class ServedModel(msgspec.Struct, kw_only=True, frozen=True):
    """The model the endpoint serves, as the OpenAI-compatible routes name and describe it
    (`/v1/embeddings`, `/v1/models`). Set by the api function's environment in template.yaml;
    change it with the endpoint's model (`EndpointModelDataUrl`)."""

    name: Annotated[str, Meta(min_length=1)] = "all-MiniLM-L6-v2"
    # Other names a request's `model` may use (MODEL_ALIASES, comma-separated); answered as `name`.
    aliases: tuple[str, ...] = ()
    dimensions: Annotated[int, Meta(ge=1)] = 384
    # True only for a model trained so that a prefix of its vector is itself an embedding
    # (Matryoshka), e.g. nomic-embed-text-v1.5. Then `dimensions` below the model's is served
    # as that prefix, re-normalised, like OpenAI's text-embedding-3. MiniLM is not such a model.
    truncatable: bool = False

    def resolve(self, requested: str) -> str | None:
        """The served name for a request's `model`, or None when it is not this model."""
        return self.name if requested == self.name or requested in self.aliases else None


class VectorIndexing(msgspec.Struct, kw_only=True, frozen=True):
    """Indexing into Amazon S3 Vectors (template parameter `VectorIndexing`): on when the
    functions are given the index's ARN and the documents table; off when both are empty."""

    index_arn: str = ""  # VECTOR_INDEX_ARN
    documents_table: str = ""  # DOCUMENTS_TABLE: pk document_id -> chunks indexed, job_id
    # VECTOR_WRITE_RATE: vectors per second that this stack's writers together aim to stay
    # below (S3 Vectors allows about 2,500 vectors and 1,000 write requests per second per index)
    write_rate: Annotated[float, Meta(gt=0, le=2500)] = 2000.0

    @property
    def enabled(self) -> bool:
        return bool(self.index_arn and self.documents_table)


class AsyncInference(msgspec.Struct, kw_only=True, frozen=True):
    """EndpointMode=async: the limits of one InvokeEndpointAsync (template parameters
    `AsyncRequestTTLSeconds`, `AsyncInvocationTimeoutSeconds`)."""

    # how long a request may wait in the endpoint's queue (SageMaker: 60 s to 6 h)
    async_request_ttl_s: Annotated[int, Meta(ge=60, le=21600)] = 3600
    # how long the container may take once it has the request (SageMaker: 1 s to 1 h)
    async_invocation_timeout_s: Annotated[int, Meta(ge=1, le=3600)] = 900
    # past TTL + invocation timeout + this, a try with no result and no notification is lost
    async_lost_grace_s: Annotated[int, Meta(ge=0)] = 120
    # the sweep resumes a try from its result in S3 only once the result is this old: its
    # notification (normally within a second) comes first, the sweep catches a lost one
    async_notification_grace_s: Annotated[int, Meta(ge=0)] = 60

    @property
    def deadline_s(self) -> int:
        return self.async_request_ttl_s + self.async_invocation_timeout_s + self.async_lost_grace_s


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    resources: ResourceNames
    chunking: ChunkingDefaults = field(default_factory=ChunkingDefaults)
    routing: WorkflowRouting = field(default_factory=WorkflowRouting)
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)
    model: ServedModel = field(default_factory=ServedModel)
    vectors: VectorIndexing = field(default_factory=VectorIndexing)
    async_inference: AsyncInference = field(default_factory=AsyncInference)
    job_ttl_days: Annotated[int, Meta(ge=1)] = 30

    @property
    def express_enabled(self) -> bool:
        """Small jobs may run on Express: its state machine is given and ExpressMaxBytes > 0."""
        return bool(self.resources.express_state_machine_arn) and self.routing.express_max_bytes > 0

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> "Settings":
        def pick(*names: str) -> dict[str, object]:
            return {
                n.lower(): _comma_separated(env[n]) if n in _LISTS else env[n]
                for n in names
                if env.get(n, "") != ""
            }

        data: dict[str, object] = {
            "resources": pick(
                "DATA_BUCKET",
                "JOBS_TABLE",
                "IDEMPOTENCY_TABLE",
                "STATE_MACHINE_ARN",
                "EXPRESS_STATE_MACHINE_ARN",
                "ENDPOINT_NAME",
                "EVENT_BUS_NAME",
                "INFERENCE_TABLE",
            ),
            "chunking": pick(
                "BATCH_SIZE",
                "CHUNK_TOKENS",
                "CHUNK_OVERLAP",
                "INLINE_MAP_MAX_BATCHES",
                "MAP_MAX_CONCURRENCY",
            ),
            "routing": pick("EXPRESS_MAX_BYTES", "EXPRESS_MAX_BATCHES"),
            "webhooks": pick(
                "ALLOW_PRIVATE_WEBHOOKS",
                "WEBHOOK_QUEUE_URL",
                "WEBHOOK_RETRY_SCHEDULE",
                "WEBHOOK_TIMEOUT_S",
            ),
            "model": {
                k.removeprefix("model_"): v
                for k, v in pick(
                    "MODEL_NAME", "MODEL_ALIASES", "MODEL_DIMENSIONS", "MODEL_TRUNCATABLE"
                ).items()
            },
            "vectors": {
                k.removeprefix("vector_"): v
                for k, v in pick("VECTOR_INDEX_ARN", "VECTOR_WRITE_RATE", "DOCUMENTS_TABLE").items()
            },
        }
        data["async_inference"] = pick(
            "ASYNC_REQUEST_TTL_S",
            "ASYNC_INVOCATION_TIMEOUT_S",
            "ASYNC_LOST_GRACE_S",
            "ASYNC_NOTIFICATION_GRACE_S",
        )
        data.update(pick("JOB_TTL_DAYS"))
        return msgspec.convert(data, cls, strict=False)


# settings given as comma-separated lists ("5,300,1800"; "a, b")
_LISTS = frozenset({"WEBHOOK_RETRY_SCHEDULE", "MODEL_ALIASES"})


def _comma_separated(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    return Settings.from_mapping(os.environ)
