"""HTTP server: SageMaker hosting protocol (/ping, /invocations) plus the runtime API path.

The model loads on a background thread once the server is up, so /ping answers 503 until it is
ready and nothing ever blocks the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tandem_endpoint.backends import (
    Backend,
    BackendOptions,
    DirectBackend,
    load_backend,
)
from tandem_endpoint.backends.tokens import Tokens
from tandem_endpoint.batcher import Batcher, BatchingSettings, QueueFullError
from tandem_endpoint.faults import FaultPlan
from tandem_endpoint.stages import StageTimes

log = logging.getLogger("tandem_endpoint.server")

MAX_BODY_BYTES = 6 * 1024 * 1024  # the SageMaker runtime's request cap
# A body over the cap is still read (and dropped) up to this many bytes before the 413 goes out:
# a server that answers and closes with unread bytes in its socket makes the kernel send a TCP
# reset, and a plain client (urllib) then sees "connection reset" instead of the 413.
MAX_DRAIN_BYTES = 64 * 1024 * 1024
ENCODINGS = ("float", "base64-f32", "base64-f16", "npy")
NPY_MEDIA_TYPE = "application/x-npy"


@dataclass
class ServerSettings:
    model_dir: str = ""
    backend: str = "auto"
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    request_deadline_s: float = 55.0
    enable_fault_injection: bool = False
    max_body_bytes: int = MAX_BODY_BYTES
    max_drain_bytes: int = MAX_DRAIN_BYTES
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    warmup: str = "auto"  # auto (on for torch on CUDA) | on | off


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        body = {"error": {"code": self.code, "message": self.message}}
        return JSONResponse(body, status_code=self.status)


class EndpointState:
    def __init__(
        self,
        settings: ServerSettings,
        backend_factory: Callable[[], Backend | DirectBackend] | None,
    ) -> None:
        self.settings = settings
        self.backend_factory: Callable[[], Backend | DirectBackend] = backend_factory or (
            lambda: load_backend(settings.backend, settings.model_dir, settings.backend_options)
        )
        self.backend: Backend | DirectBackend | None = None
        self.batcher: Batcher | None = None
        self.stages = StageTimes()
        self.warmup_s: float | None = None
        self.load_error: str | None = None
        self.faults = FaultPlan()
        self.requests = 0
        self.in_flight = 0
        self.responses: Counter[int] = Counter()
        self.started_at = time.monotonic()
        self.ready_after_s: float | None = None
        self._s3: Any = None
        self._s3_lock = threading.Lock()

    def start_loading(self, loop: asyncio.AbstractEventLoop) -> None:
        def load() -> None:
            try:
                backend = self.backend_factory()
                if not isinstance(backend, DirectBackend) and self._should_warm_up(backend):
                    self.warmup_s = warm_up(backend, self.settings.batching)
            except Exception as exc:
                log.exception("model load failed")
                self.load_error = f"{type(exc).__name__}: {exc}"
                return
            loop.call_soon_threadsafe(self._on_loaded, backend)

        threading.Thread(target=load, name="model-load", daemon=True).start()

    def _should_warm_up(self, backend: Backend) -> bool:
        if self.settings.warmup == "auto":
            return bool(getattr(backend, "on_cuda", False))
        return self.settings.warmup == "on"

    def _on_loaded(self, backend: Backend | DirectBackend) -> None:
        if not isinstance(backend, DirectBackend):  # a direct stand-in needs no batcher
            self.batcher = Batcher(backend, self.settings.batching, self.stages)
            self.batcher.start()
        self.backend = backend
        self.ready_after_s = round(time.monotonic() - self.started_at, 3)
        log.info(
            "model ready",
            extra={
                "model": backend.name,
                "dims": backend.dims,
                "load_s": self.ready_after_s,
                "warmup_s": self.warmup_s,
            },
        )

    async def embed(self, texts: list[str]) -> np.ndarray:
        if isinstance(self.backend, DirectBackend):
            backend = self.backend
            return await asyncio.to_thread(
                self.stages.run, "forward", len(texts), backend.embed_texts, texts
            )
        assert self.batcher is not None
        return await self.batcher.embed(texts)

    @property
    def s3(self) -> Any:
        with self._s3_lock:
            if self._s3 is None:
                import boto3  # honours AWS_ENDPOINT_URL (the local cloud's moto server)

                self._s3 = boto3.client("s3")
            return self._s3


def create_app(
    settings: ServerSettings,
    backend_factory: Callable[[], Backend | DirectBackend] | None = None,
) -> Starlette:
    state = EndpointState(settings, backend_factory)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        state.start_loading(asyncio.get_running_loop())
        yield
        if state.batcher:
            await state.batcher.stop()

    async def ping(request: Request) -> Response:
        if state.backend is None:
            return JSONResponse({"status": "loading", "error": state.load_error}, status_code=503)
        return JSONResponse({"status": "ok", "model": state.backend.name})

    async def invocations(request: Request) -> Response:
        return await _invoke(state, request)

    async def runtime_invocations(request: Request) -> Response:
        response = await _invoke(state, request)
        if response.status_code >= 400:
            response = _as_runtime_error(response)
        else:
            response.headers["x-Amzn-Invoked-Production-Variant"] = "AllTraffic"
        # The runtime always names the request; Step Functions puts it in the error's Cause.
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return response

    async def metrics(request: Request) -> Response:
        batch_stats = state.batcher.stats.snapshot() if state.batcher else {}
        return JSONResponse(
            {
                "requests": state.requests,
                "in_flight": state.in_flight,
                "queue_depth": state.batcher.queue_depth if state.batcher else 0,
                "responses": {str(k): v for k, v in sorted(state.responses.items())},
                "ready": state.backend is not None,
                "ready_after_s": state.ready_after_s,
                "warmup_s": state.warmup_s,
                "batching": settings.batching.batching,
                **batch_stats,
                # CPU seconds per stage; the event loop's own thread CPU (this handler runs on it).
                "stages": state.stages.snapshot(),
                "event_loop_cpu_s": round(time.thread_time(), 6),
            }
        )

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            state.faults.clear()
        elif request.method == "POST":
            try:
                plan = json.loads(await request.body())
                if not isinstance(plan, dict):
                    raise ValueError("fault plan must be a JSON object")
                state.faults.update(plan)
            except ValueError as exc:
                return ApiError(400, "invalid_fault_plan", str(exc)).response()
        return JSONResponse(state.faults.as_dict())

    routes = [
        Route("/ping", ping, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/endpoints/{name}/invocations", runtime_invocations, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if settings.enable_fault_injection:
        routes.append(Route("/faults", faults, methods=["GET", "POST", "DELETE"]))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.endpoint = state
    return app


async def _invoke(state: EndpointState, request: Request) -> Response:
    state.requests += 1
    state.in_flight += 1
    try:
        response = await _handle(state, request)
    except ApiError as err:
        response = err.response()
    except Exception:
        log.exception("invocation failed")
        response = ApiError(500, "internal_error", "the model server failed").response()
    finally:
        state.in_flight -= 1
    state.responses[response.status_code] += 1
    return response


async def _handle(state: EndpointState, request: Request) -> Response:
    settings = state.settings
    fault = state.faults.take() if settings.enable_fault_injection else None
    if fault == "throttle":
        raise ApiError(429, "throttled", "injected fault: throttle")
    if fault == "error_5xx":
        raise ApiError(500, "injected_error", "injected fault: server error")
    if fault == "error_4xx":
        raise ApiError(400, "injected_client_error", "injected fault: client error")

    body = await _read_body(request, settings.max_body_bytes, settings.max_drain_bytes)
    payload = _parse_payload(body)
    if state.backend is None:
        raise ApiError(503, "model_not_ready", "the model is still loading")
    backend = state.backend
    deadline_s = settings.request_deadline_s
    if fault == "slow" and state.faults.slow_deadline_s is not None:
        deadline_s = state.faults.slow_deadline_s
    try:
        async with asyncio.timeout(deadline_s):
            if fault == "slow":
                await asyncio.sleep(state.faults.slow_s)
            if fault == "malformed" and "inputs" in payload:
                return JSONResponse({"oops": True})
            if "inputs" in payload:
                vectors = await state.embed(payload["inputs"])
                return _inline_response(vectors, payload["encoding"], backend)
            return await _claim_check(state, backend, payload, malformed=fault == "malformed")
    except QueueFullError as exc:
        raise ApiError(429, "queue_full", str(exc)) from None
    except TimeoutError:
        raise ApiError(503, "deadline_exceeded", f"not done within {deadline_s:g} s") from None


def _inline_response(
    vectors: np.ndarray, encoding: str, backend: Backend | DirectBackend
) -> Response:
    if encoding == "npy":  # binary: no JSON floats to write (or for the client to parse)
        headers = {"x-tandem-model": backend.name, "x-tandem-dims": str(backend.dims)}
        return Response(_npy_bytes(vectors), media_type=NPY_MEDIA_TYPE, headers=headers)
    return JSONResponse(
        {
            "outputs": _encode_vectors(vectors, encoding),
            "model": backend.name,
            "dims": backend.dims,
            "encoding": encoding,
        }
    )


async def _read_body(request: Request, limit: int, drain_limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = ApiError(413, "payload_too_large", f"body exceeds {limit} bytes")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid_request", "bad Content-Length header")
        if int(declared) > limit:
            await _drain(request, 0, drain_limit)
            raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            await _drain(request, len(body), drain_limit)
            raise too_large
    return bytes(body)


async def _drain(request: Request, seen: int, drain_limit: int) -> None:
    """Read and drop the rest of an oversized body (up to `drain_limit` bytes in all), so the
    client gets to read the 413 instead of a connection reset."""
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > drain_limit:
            return


def _parse_payload(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_request", "body must be a JSON object")
    if "inputs" in payload:
        inputs = payload["inputs"]
        if not isinstance(inputs, list) or not inputs:
            raise ApiError(400, "invalid_request", "inputs must be a non-empty list of strings")
        if not all(isinstance(text, str) for text in inputs):
            raise ApiError(400, "invalid_request", "every input must be a string")
        encoding = payload.get("encoding", "float")
        if encoding not in ENCODINGS:
            raise ApiError(400, "invalid_request", f"encoding must be one of {ENCODINGS}")
        return {"inputs": inputs, "encoding": encoding}
    if "inputs_uri" in payload or "outputs_uri" in payload:
        return {
            "inputs_uri": _s3_location(payload.get("inputs_uri"), "inputs_uri"),
            "outputs_uri": _s3_location(payload.get("outputs_uri"), "outputs_uri"),
        }
    raise ApiError(400, "invalid_request", "expected {inputs: [...]} or {inputs_uri, outputs_uri}")


def _s3_location(uri: Any, name: str) -> tuple[str, str]:
    if not isinstance(uri, str):
        raise ApiError(400, "invalid_request", f"{name} must be an s3:// URI")
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key:
        raise ApiError(400, "invalid_request", f"{name} must look like s3://bucket/key")
    return parsed.netloc, key


def _encode_vectors(vectors: np.ndarray, encoding: str) -> list[Any]:
    if encoding == "float":
        return vectors.astype(np.float32).tolist()
    dtype = np.dtype("<f4") if encoding == "base64-f32" else np.dtype("<f2")
    return [base64.b64encode(row.astype(dtype).tobytes()).decode("ascii") for row in vectors]


def _npy_bytes(vectors: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(vectors, dtype="<f4"))
    return buffer.getvalue()


async def _claim_check(
    state: EndpointState,
    backend: Backend | DirectBackend,
    payload: dict[str, Any],
    malformed: bool,
) -> Response:
    (in_bucket, in_key), (out_bucket, out_key) = payload["inputs_uri"], payload["outputs_uri"]
    texts = await asyncio.to_thread(_read_texts, state, in_bucket, in_key)
    vectors = await state.embed(texts) if texts else np.zeros((0, backend.dims), np.float32)
    if malformed:  # injected fault: a .npy with the wrong row count
        vectors = vectors[:-1] if len(vectors) else np.zeros((1, backend.dims), np.float32)
    await asyncio.to_thread(_write_vectors, state, out_bucket, out_key, vectors)
    return JSONResponse(
        {
            "count": len(texts),
            "dims": backend.dims,
            "model": backend.name,
            "outputs_uri": f"s3://{out_bucket}/{out_key}",
        }
    )


def _read_texts(state: EndpointState, bucket: str, key: str) -> list[str]:
    """Worker thread: fetch the JSONL batch, then parse it (each its own stage)."""
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    raw = _read_s3_object(state, bucket, key)
    cpu1, wall1 = time.thread_time(), time.perf_counter()
    texts = _parse_jsonl_texts(raw)
    cpu2, wall2 = time.thread_time(), time.perf_counter()
    state.stages.add("s3_read", len(texts), cpu1 - cpu0, wall1 - wall0)
    state.stages.add("parse", len(texts), cpu2 - cpu1, wall2 - wall1)
    return texts


def _write_vectors(state: EndpointState, bucket: str, key: str, vectors: np.ndarray) -> None:
    body = state.stages.run("npy", len(vectors), _npy_bytes, vectors)
    state.stages.run(
        "s3_write", len(vectors), lambda: state.s3.put_object(Bucket=bucket, Key=key, Body=body)
    )


def _read_s3_object(state: EndpointState, bucket: str, key: str) -> bytes:
    try:
        return bytes(state.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except state.s3.exceptions.NoSuchKey:
        raise ApiError(400, "input_not_found", f"s3://{bucket}/{key} does not exist") from None
    except state.s3.exceptions.NoSuchBucket:
        raise ApiError(400, "input_not_found", f"bucket {bucket} does not exist") from None


def _parse_jsonl_texts(raw: bytes) -> list[str]:
    """The `text` of each JSONL row, strictly one JSON object per line (split on "\n" only:
    str.splitlines would also split inside a row at U+2028, U+0085 and friends, which JSON
    allows unescaped in strings)."""
    try:
        content = raw.decode("utf-8-sig", errors="strict")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_input_file", f"input is not UTF-8: {exc}") from None
    texts = []
    loads = json.loads
    for number, line in enumerate(content.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = loads(line)
        except json.JSONDecodeError:
            raise ApiError(400, "invalid_input_file", f"line {number} is not JSON") from None
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str):
            raise ApiError(400, "invalid_input_file", f'line {number} has no string "text"')
        texts.append(text)
    return texts


def warm_up(backend: Backend, batching: BatchingSettings) -> float:
    """Run one full batch per bucket width before /ping says ready, so the first request does
    not pay for CUDA context set-up, kernel selection or compilation. Returns seconds spent."""
    started = time.monotonic()
    max_seq = int(getattr(backend, "max_seq_length", 256))
    widths = sorted({min(w, max_seq) for w in batching.length_buckets} | {max_seq})
    for width in widths:
        rows = batching.rows_cap(width)
        ids = np.full((rows, width), 100, dtype=np.int32)  # [UNK]: any valid id will do
        backend.forward(Tokens(ids, np.full(rows, width, dtype=np.int32)))
    return round(time.monotonic() - started, 3)


MAX_ERROR_CHARS = 512


def _as_runtime_error(container_response: Response) -> Response:
    """Reshape a container error the way the SageMaker runtime reports it to boto3."""
    status = container_response.status_code
    # Capped: the message lands in Step Functions state (Map results), which has a 256 KiB limit.
    original = bytes(container_response.body).decode("utf-8", errors="replace")[:MAX_ERROR_CHARS]
    if status == 429:
        error_type, runtime_status, message = "ThrottlingException", 429, _error_message(original)
    elif status == 503:
        error_type, runtime_status, message = "ServiceUnavailable", 503, _error_message(original)
    else:
        kind = "server" if status >= 500 else "client"
        error_type, runtime_status = "ModelError", 424
        message = f'Received {kind} error ({status}) from primary with message "{original}"'
    body: dict[str, Any] = {"message": message}
    if error_type == "ModelError":
        body.update(
            ErrorCode="INTERNAL_FAILURE_FROM_MODEL" if status >= 500 else "CLIENT_ERROR_FROM_MODEL",
            OriginalStatusCode=status,
            OriginalMessage=original,
        )
    return JSONResponse(body, status_code=runtime_status, headers={"x-amzn-ErrorType": error_type})


def _error_message(body: str) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body
