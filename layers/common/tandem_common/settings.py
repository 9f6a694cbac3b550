"""Typed settings built once from the environment and validated at cold start.

Domain code receives a `Settings` instance; only this module reads `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ResourceNames(BaseModel):
    """Names/ARNs of the AWS resources the functions talk to."""

    model_config = ConfigDict(frozen=True)

    data_bucket: str = Field(min_length=3)
    jobs_table: str = Field(min_length=1)
    idempotency_table: str = ""
    state_machine_arn: str = ""
    endpoint_name: str = ""
    event_bus_name: str = "default"


class ChunkingDefaults(BaseModel):
    """Default job options (a job's own `options` override them)."""

    model_config = ConfigDict(frozen=True)

    batch_size: int = Field(default=64, ge=1, le=256)
    chunk_tokens: int = Field(default=256, ge=32, le=256)
    chunk_overlap: int = Field(default=32, ge=0)
    inline_map_max_batches: int = Field(default=100, ge=1)
    map_max_concurrency: int = Field(default=8, ge=1, le=40)

    @model_validator(mode="after")
    def _overlap_within_half(self) -> ChunkingDefaults:
        if self.chunk_overlap > self.chunk_tokens // 2:
            raise ValueError("CHUNK_OVERLAP must be at most CHUNK_TOKENS / 2")
        return self


class WebhookPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    allow_private_webhooks: bool = False


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    resources: ResourceNames
    chunking: ChunkingDefaults = ChunkingDefaults()
    webhooks: WebhookPolicy = WebhookPolicy()
    job_ttl_days: int = Field(default=30, ge=1)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        def pick(*names: str) -> dict[str, str]:
            return {n.lower(): env[n] for n in names if env.get(n, "") != ""}

        data: dict[str, object] = {
            "resources": pick(
                "DATA_BUCKET",
                "JOBS_TABLE",
                "IDEMPOTENCY_TABLE",
                "STATE_MACHINE_ARN",
                "ENDPOINT_NAME",
                "EVENT_BUS_NAME",
            ),
            "chunking": pick(
                "BATCH_SIZE",
                "CHUNK_TOKENS",
                "CHUNK_OVERLAP",
                "INLINE_MAP_MAX_BATCHES",
                "MAP_MAX_CONCURRENCY",
            ),
            "webhooks": pick("ALLOW_PRIVATE_WEBHOOKS"),
        }
        data.update(pick("JOB_TTL_DAYS"))
        return cls.model_validate(data)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    return Settings.from_mapping(os.environ)
