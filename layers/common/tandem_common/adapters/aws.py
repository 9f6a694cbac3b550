"""Lazily created, cached, injectable boto3 clients (one per service per container).

Only integration modules (this one, and the store/storage/events modules using it) touch boto3.
Tests inject fakes with `set_client` and drop the cache with `reset_clients`.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5)
# S3 Vectors answers 429 TooManyRequestsException above its per-index write rates; standard mode
# retries it (a throttling code) with exponential backoff and jitter, here up to 8 attempts
# (at most about 70 s of backoff, inside the collect function's 120 s).
VECTOR_MAX_ATTEMPTS = 8
_SERVICE_CONFIG = {
    "s3": Config(signature_version="s3v4"),
    "s3vectors": Config(retries={"mode": "standard", "max_attempts": VECTOR_MAX_ATTEMPTS}),
}
_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    """The cached client for `service` (e.g. "s3"), created on first use."""
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            extra = _SERVICE_CONFIG.get(service)
            config = _CONFIG.merge(extra) if extra is not None else _CONFIG
            factory: Any = boto3.client  # the stubs' per-service overloads need a literal name
            _clients[service] = factory(service, config=config)
        return _clients[service]


def set_client(service: str, value: Any) -> None:
    _clients[service] = value


def reset_clients() -> None:
    _clients.clear()


def s3() -> Any:
    return client("s3")


def dynamodb() -> Any:
    return client("dynamodb")


def stepfunctions() -> Any:
    return client("stepfunctions")


def eventbridge() -> Any:
    return client("events")


def sagemaker_runtime() -> Any:
    return client("sagemaker-runtime")


def s3vectors() -> Any:
    return client("s3vectors")


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
