"""What the local cloud's tests (and `bench/load.py`) break, named by what breaks.

`LocalCloud.faults.endpoint` drives the endpoint server's own plan (`POST /faults`: throttle,
5xx, 4xx, slow, malformed), `.lambdas` the Lambda service's worker faults (crash, crash_after,
hang), `.s3` PutObject failures and `.vectors` S3 Vectors throttles injected in front of the
moto server, and in EndpointMode=async `.async_front` the platform's (a notification dropped or
duplicated, a request lost). Each `set(None)` clears.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from tandem.local.async_front import AsyncFront
from tandem.local.lambda_service import LambdaService


class EndpointFaults:
    """The endpoint's fault plan, see `tandem_endpoint.faults`: `{"throttle": n}`,
    `{"error_5xx": n}`, `{"error_4xx": n}`, `{"slow_s": s, "count": n}`, `{"malformed": n}`."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url

    def set(self, plan: dict[str, Any] | None) -> dict[str, Any]:
        method = "DELETE" if plan is None else "POST"
        data = None if plan is None else json.dumps(plan).encode()
        req = urllib.request.Request(
            self.endpoint_url + "/faults",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return dict(json.loads(r.read() or b"{}"))


class LambdaFaults:
    """Worker faults per function (name or logical id): `{"crash": n, "crash_after": n,
    "hang": n, "timeout_s": s}`; see `tandem.local.lambda_service`."""

    def __init__(self, service: LambdaService) -> None:
        self.service = service

    def set(self, plan: dict[str, dict[str, float]] | None) -> dict[str, Any]:
        return self.service.set_faults(plan)

    @property
    def log(self) -> list[tuple[str, str]]:
        """(function name, fault) for each fault injected so far."""
        return self.service.fault_log


class S3PutFaults:
    """WSGI middleware on the moto server (the path the workers and the endpoint use): fails
    the next `count` PutObject calls whose key starts with `prefix` with an S3-shaped 5xx
    (`503 SlowDown` by default). Copies, multipart parts and sub-resources pass through."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.rules: list[dict[str, Any]] = []
        self.injected: list[str] = []  # keys failed so far

    def set(self, rules: list[dict[str, Any]] | None) -> None:
        """`[{"prefix", "count", "status": 503, "code": "SlowDown"}]`; None clears."""
        rules = rules or []
        with self.lock:
            self.rules = [
                {
                    "prefix": str(r.get("prefix", "")),
                    "count": int(r.get("count", 1)),
                    "status": int(r.get("status", 503)),
                    "code": str(r.get("code", "SlowDown")),
                }
                for r in rules
            ]

    def _match(self, environ: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if environ.get("REQUEST_METHOD") != "PUT" or not self.rules:
            return None
        if environ.get("QUERY_STRING") or environ.get("HTTP_X_AMZ_COPY_SOURCE"):
            return None  # multipart part, tagging, acl, copy...
        parts = urllib.parse.unquote(environ.get("PATH_INFO", "")).lstrip("/").split("/", 1)
        if len(parts) != 2 or not parts[1]:
            return None  # CreateBucket or not path-style
        key = parts[1]
        with self.lock:
            for rule in self.rules:
                if rule["count"] > 0 and key.startswith(rule["prefix"]):
                    rule["count"] -= 1
                    self.injected.append(key)
                    return key, rule
        return None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        hit = self._match(environ)
        if hit is None:
            return self.app(environ, start_response)
        key, rule = hit
        from werkzeug.wrappers import Request

        Request(environ).get_data()  # drain the body so the connection stays usable
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{rule["code"]}</Code>'
            f"<Message>Injected fault (local cloud)</Message><Key>{key}</Key>"
            f"<RequestId>{uuid.uuid4().hex}</RequestId></Error>"
        ).encode()
        start_response(
            f"{rule['status']} Injected",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
        )
        return [body]


class VectorFaults:
    """WSGI middleware on the moto server: answers the next `count` S3 Vectors calls of
    `operation` (e.g. PutVectors) as the service throttles, 429 `TooManyRequestsException`, so
    the callers' SDK retries (or gives up) as it would on AWS."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.rules: dict[str, int] = {}
        self.injected: list[str] = []  # operations throttled so far

    def set(self, rules: dict[str, int] | None) -> None:
        """`{"PutVectors": 3, "DeleteVectors": 1}`; None clears."""
        with self.lock:
            self.rules = {op: int(n) for op, n in (rules or {}).items()}
            self.injected = []

    def _match(self, environ: dict[str, Any]) -> str | None:
        if not self.rules or "/s3vectors/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
            return None
        operation = environ.get("PATH_INFO", "").strip("/")
        with self.lock:
            if self.rules.get(operation, 0) > 0:
                self.rules[operation] -= 1
                self.injected.append(operation)
                return operation
        return None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        operation = self._match(environ)
        if operation is None:
            return self.app(environ, start_response)
        from werkzeug.wrappers import Request

        Request(environ).get_data()  # drain the body so the connection stays usable
        body = json.dumps({"message": f"Injected throttle on {operation} (local cloud)"}).encode()
        start_response(
            "429 Too Many Requests",
            [
                ("Content-Type", "application/json"),
                ("x-amzn-ErrorType", "TooManyRequestsException"),
                ("x-amzn-RequestId", uuid.uuid4().hex),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]


@dataclass
class Faults:
    endpoint: EndpointFaults
    lambdas: LambdaFaults
    s3: S3PutFaults
    vectors: VectorFaults
    async_front: AsyncFront | None = None

    def clear(self) -> None:
        self.endpoint.set(None)
        self.lambdas.set(None)
        self.s3.set(None)
        self.vectors.set(None)
        if self.async_front is not None:
            self.async_front.set_faults(None)
