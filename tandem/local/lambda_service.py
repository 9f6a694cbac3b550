"""A local Lambda service speaking the Lambda Invoke HTTP API (like `sam local start-lambda`).

`POST /2015-03-31/functions/{name | logical id | url-encoded ARN}/invocations`, with
`X-Amz-Invocation-Type` RequestResponse (default), Event (202, runs in the background) or
DryRun (204).  Each function runs in warm worker processes (`tandem.local.lambda_worker`), up
to `max_workers` per function, spawned lazily, killed and respawned on timeout.
Function errors are Lambda-shaped: 200 + `X-Amz-Function-Error: Unhandled` +
`{"errorType", "errorMessage", "stackTrace"}`.

Like Lambda, an invoke's Timeout starts once the runtime is initialised: a new worker first
imports its handler (the init phase, bounded by `INIT_TIMEOUT_S`) and says it is ready; only then
is the request sent and its clock started. So a cold worker on a busy machine never turns a
short Timeout into a spurious `Sandbox.Timedout`.

Fault injection (tests, `bench/load.py`): `set_faults({fn: {"crash": n, "crash_after": n,
"hang": n, "timeout_s": s}})` or `POST /_local/faults` with that body (`{}` clears), `fn` a function
name or logical id. The next n invokes of `fn`: `crash` makes the worker `os._exit(137)` before
the handler runs; `crash_after` after the handler ran but before it replied (its side effects
happened, its reply is lost); both answer `Runtime.ExitError` as Lambda does for a dead runtime.
`hang` makes the handler never return, so the invoke hits the function's Timeout (or
`timeout_s`, standing in for a shorter configured Timeout) and answers `Sandbox.Timedout`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any

from tandem.local.http_server import BackgroundHttpServer
from tandem.local.template import FunctionSpec

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
# Lambda gives a function's init 10 s; locally a cold import on a loaded 2-core machine can take
# longer, and init is not what an invoke's Timeout measures, so it gets its own, wider bound.
INIT_TIMEOUT_S = 120.0


class InitTimeout(Exception):
    """The worker did not finish importing its handler within INIT_TIMEOUT_S."""


@dataclass
class InvokeResult:
    payload: Any
    error_type: str | None = None  # set => function error (Unhandled)

    def body(self) -> bytes:
        return json.dumps(self.payload).encode()


class Worker:
    """One `lambda_worker` process and its protocol. `argv` runs it (default: this interpreter,
    `-m tandem.local.lambda_worker`); `stderr` takes the function's logs (a file or PIPE)."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        log_file: IO[bytes] | int,
        argv: list[str] | None = None,
    ) -> None:
        self.spec = spec
        self.proc = subprocess.Popen(
            argv or [sys.executable, "-m", "tandem.local.lambda_worker", spec.handler],
            cwd=str(spec.code_dir),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
        self._buf = b""
        self.initialised = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read_line(self, timeout: float) -> dict[str, Any] | None:
        """The worker's next protocol line, or None after `timeout` seconds."""
        assert self.proc.stdout
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise EOFError("worker exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def wait_initialised(self, timeout: float = INIT_TIMEOUT_S) -> None:
        """Block until the worker has imported its handler (its first line says so)."""
        if self.initialised:
            return
        if self._read_line(timeout) is None:
            raise InitTimeout(f"worker not initialised after {timeout:.0f}s")
        self.initialised = True

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send one request to an initialised worker; None on timeout (the caller kills it)."""
        assert self.proc.stdin
        self.wait_initialised()
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        return self._read_line(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass


class _Pool:
    def __init__(
        self, spec: FunctionSpec, env: dict[str, str], log_path: Path, max_workers: int
    ) -> None:
        self.spec = spec
        self.env = env
        self.max_workers = max_workers
        self.log_file = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.idle: list[Worker] = []
        self.count = 0
        self.cond = threading.Condition()
        self.closed = False

    def acquire(self) -> Worker:
        with self.cond:
            while True:
                if self.closed:
                    raise RuntimeError("function pool closed")
                while self.idle:
                    w = self.idle.pop()
                    if w.alive():
                        return w
                    self.count -= 1
                    w.kill()
                if self.count < self.max_workers:
                    self.count += 1
                    break
                self.cond.wait()
        try:
            return Worker(self.spec, self.env, self.log_file)
        except Exception:
            with self.cond:
                self.count -= 1
                self.cond.notify()
            raise

    def release(self, w: Worker, discard: bool = False) -> None:
        with self.cond:
            if discard or self.closed or not w.alive():
                self.count -= 1
                w.kill()
            else:
                self.idle.append(w)
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            idle, self.idle = self.idle, []
            self.cond.notify_all()
        for w in idle:
            w.kill()
        self.log_file.close()


class LambdaService:
    def __init__(
        self,
        functions: dict[str, FunctionSpec],
        env_for: Callable[[FunctionSpec], dict[str, str]],
        log_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        max_workers: int = 4,
    ) -> None:
        self.functions = {spec.name: spec for spec in functions.values()}
        self._aliases: dict[str, str] = {}
        for lid, spec in functions.items():
            self._aliases[lid] = spec.name
            self._aliases[spec.name] = spec.name
            self._aliases[spec.arn] = spec.name
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._pools = {
            spec.name: _Pool(spec, env_for(spec), self.log_dir / f"{spec.name}.log", max_workers)
            for spec in functions.values()
        }
        self._background: list[threading.Thread] = []
        self._faults: dict[str, dict[str, float]] = {}
        self._faults_lock = threading.Lock()
        self.fault_log: list[tuple[str, str]] = []  # (function name, fault) as injected
        # per function: the largest worker's peak RSS seen (Lambda's "Max Memory Used")
        self.peak_memory_mb: dict[str, int] = {}
        self._http = BackgroundHttpServer(self._handle, host, port, name="lambda-service")
        self.url = self._http.url

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LambdaService:
        self._http.start()
        return self

    def close(self) -> None:
        self._http.close()
        for p in self._pools.values():
            p.close()

    # ------------------------------------------------------------------ API
    def resolve_name(self, name_or_arn: str) -> str | None:
        key = urllib.parse.unquote(name_or_arn)
        if key in self._aliases:
            return self._aliases[key]
        # qualified ARN / name (":$LATEST")
        base, _, qual = key.rpartition(":")
        if base and qual in ("$LATEST", "live") and base in self._aliases:
            return self._aliases[base]
        return None

    def set_faults(self, plan: dict[str, dict[str, float]] | None) -> dict[str, Any]:
        """Replace the fault plan (see the module doc); None or {} clears it."""
        faults: dict[str, dict[str, float]] = {}
        for fn, spec in (plan or {}).items():
            resolved = self.resolve_name(fn)
            if resolved is None:
                raise KeyError(fn)
            bad = set(spec) - {"crash", "crash_after", "hang", "timeout_s"}
            if bad:
                raise ValueError(f"unknown Lambda faults {sorted(bad)}")
            faults[resolved] = {k: float(v) for k, v in spec.items()}
        with self._faults_lock:
            self._faults = faults
        return self.faults()

    def faults(self) -> dict[str, Any]:
        with self._faults_lock:
            return {k: dict(v) for k, v in self._faults.items()}

    def _take_fault(self, name: str) -> tuple[str | None, float | None]:
        """Consume one injected fault for this invoke: (kind, timeout override)."""
        with self._faults_lock:
            plan = self._faults.get(name)
            if not plan:
                return None, None
            for kind in ("crash", "crash_after", "hang"):
                if plan.get(kind, 0) >= 1:
                    plan[kind] -= 1
                    self.fault_log.append((name, kind))
                    return kind, plan.get("timeout_s")
        return None, None

    def invoke(self, name: str, event: Any) -> InvokeResult:
        """Invoke synchronously in a warm worker (blocks up to the function's Timeout)."""
        resolved = self.resolve_name(name)
        if resolved is None:
            raise KeyError(name)
        spec = self.functions[resolved]
        pool = self._pools[resolved]
        request_id = str(uuid.uuid4())
        fault, timeout_override = self._take_fault(resolved)
        timeout = float(timeout_override or spec.timeout)
        worker = pool.acquire()
        started = time.time()
        request = {
            "event": event,
            "request_id": request_id,
            "deadline_ms": int((started + timeout) * 1000),
            "function_name": spec.name,
            "function_arn": spec.arn,
            "memory": spec.memory,
        }
        if fault:
            request["fault"] = fault
        try:
            reply = worker.call(request, timeout=timeout)
        except InitTimeout as e:
            pool.release(worker, discard=True)
            return InvokeResult(
                {"errorType": "Sandbox.Timedout", "errorMessage": f"RequestId: {request_id} {e}"},
                "Unhandled",
            )
        except (EOFError, OSError, ValueError) as e:
            pool.release(worker, discard=True)
            pool.log_file.write(
                f"[local-lambda] {request_id} worker died: {type(e).__name__}\n".encode()
            )
            pool.log_file.flush()
            return InvokeResult(
                {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited",
                },
                "Unhandled",
            )
        pool.release(worker, discard=reply is None)
        if reply is None:
            pool.log_file.write(
                f"[local-lambda] {request_id} timed out after {timeout}s; worker killed\n".encode()
            )
            pool.log_file.flush()
            return InvokeResult(
                {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds",
                },
                "Unhandled",
            )
        max_mb = int(reply.get("max_rss_kb", 0)) // 1024
        with self._faults_lock:
            self.peak_memory_mb[resolved] = max(self.peak_memory_mb.get(resolved, 0), max_mb)
        pool.log_file.write(
            f"[local-lambda] {request_id} {'ok' if reply.get('ok') else 'error ' + str(reply.get('errorType'))}"
            f" {1000 * (time.time() - started):.0f} ms, Max Memory Used: {max_mb} MB\n".encode()
        )
        pool.log_file.flush()
        if reply.get("ok"):
            return InvokeResult(reply.get("result"))
        return InvokeResult(
            {k: reply.get(k) for k in ("errorType", "errorMessage", "stackTrace")}, "Unhandled"
        )

    def invoke_async(self, name: str, event: Any) -> None:
        t = threading.Thread(target=self._invoke_quiet, args=(name, event), daemon=True)
        t.start()

    def _invoke_quiet(self, name: str, event: Any) -> None:
        try:
            self.invoke(name, event)
        except Exception:
            log.exception("async invoke of %s failed", name)

    # ------------------------------------------------------------------ HTTP
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        if h.command != "POST":
            self._send(h, 405, {"message": f"{h.command} is not allowed"}, {})
            return
        if h.path.split("?", 1)[0] == "/_local/faults":
            self._handle_faults(h)
            return
        parts = h.path.split("?", 1)[0].split("/")
        # ['', '2015-03-31', 'functions', NAME, 'invocations']
        if len(parts) != 5 or parts[2] != "functions" or parts[4] != "invocations":
            self._send(
                h,
                404,
                {"Type": "User", "message": f"Unknown path {h.path}"},
                {"x-amzn-ErrorType": "UnknownOperationException"},
            )
            return
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        name = self.resolve_name(parts[3])
        if name is None:
            self._send(
                h,
                404,
                {
                    "Type": "User",
                    "Message": f"Function not found: {urllib.parse.unquote(parts[3])}",
                },
                {"x-amzn-ErrorType": "ResourceNotFoundException"},
            )
            return
        if len(raw) > MAX_SYNC_PAYLOAD:
            self._send(
                h,
                413,
                {"Type": "User", "message": "Request must be smaller than 6291456 bytes"},
                {"x-amzn-ErrorType": "RequestTooLargeException"},
            )
            return
        try:
            event = json.loads(raw) if raw.strip() else {}
        except ValueError:
            self._send(
                h,
                400,
                {"Type": "User", "message": "Could not parse request body into json"},
                {"x-amzn-ErrorType": "InvalidRequestContentException"},
            )
            return
        itype = h.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if itype == "DryRun":
            self._send(h, 204, None, {})
            return
        if itype == "Event":
            self.invoke_async(name, event)
            self._send(h, 202, None, {})
            return
        result = self.invoke(name, event)
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if result.error_type:
            headers["X-Amz-Function-Error"] = result.error_type
        self._send(h, 200, result.payload, headers)

    def _handle_faults(self, h: BaseHTTPRequestHandler) -> None:
        """Admin route (local only): `POST /_local/faults` with a fault plan; `{}` clears."""
        length = int(h.headers.get("Content-Length") or 0)
        try:
            plan = json.loads(h.rfile.read(length) or b"{}")
            self._send(h, 200, self.set_faults(plan), {})
        except (ValueError, KeyError, AttributeError, TypeError) as e:
            self._send(h, 400, {"message": f"bad fault plan: {e}"}, {})

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str]
    ) -> None:
        body = b"" if payload is None and status in (202, 204) else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(body)
