"""LocalCloud: the whole pipeline on one machine, built from template.yaml (see DESIGN §6).

Start order: in-process moto (`mock_aws`, real ASL interpreter) -> ThreadedMotoServer on a free
port (same state) -> moto compat patches -> the template's resources -> the local Lambda
service -> the real endpoint server (subprocess) -> the local HTTP API -> S3/SQS pollers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from tandem.local import moto_compat
from tandem.local.event_sources import S3EventBridgePoller, SqsPoller
from tandem.local.http_api import LocalHttpApi, routes_from_functions
from tandem.local.lambda_service import REPO_ROOT, LambdaService
from tandem.local.template import LocalTemplate, create_resources

log = logging.getLogger(__name__)

TERMINAL = {"SUCCEEDED", "PARTIAL", "FAILED"}
# Template parameters sized to the local CPU endpoint (a few chunks/s): Map concurrency is
# "sized to the endpoint's capacity" (DESIGN §3), and small batches keep each forward pass well
# inside the InvokeEndpoint task's 75 s timeout.
LOCAL_PARAMETERS = {"MapMaxConcurrency": "2", "BatchSize": "16"}
FAKE_CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class S3PutFaults:
    """WSGI middleware on the moto server (the path the workers and the endpoint use): fails
    the next `count` PutObject calls whose key starts with `prefix` with an S3-shaped 5xx
    (`503 SlowDown` by default). Copies, multipart parts and sub-resources pass through."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.rules: list[dict[str, Any]] = []
        self.injected: list[str] = []  # keys failed so far

    def set(self, rules: list[dict[str, Any]]) -> None:
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
            f"<RequestId>{uuid4_hex()}</RequestId></Error>"
        ).encode()
        start_response(
            f"{rule['status']} Injected",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
        )
        return [body]


def uuid4_hex() -> str:
    import uuid

    return uuid.uuid4().hex


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCloud:
    def __init__(
        self,
        template: str | Path = REPO_ROOT / "template.yaml",
        stack_name: str = "tandem",
        api_port: int = 0,
        lambda_port: int = 0,
        log_dir: str | Path | None = None,
        parameter_overrides: dict[str, str] | None = None,
        start_endpoint: bool = True,
        endpoint_ready_timeout: float = 300.0,
        endpoint_args: list[str] | None = None,
        max_workers: int = 4,
        sqs_visibility_timeout: int = 2,
        extra_function_env: dict[str, str] | None = None,
        schedule_interval_s: float | None = None,
    ) -> None:
        overrides = {**LOCAL_PARAMETERS, **(parameter_overrides or {})}
        self.template = LocalTemplate(template, stack_name=stack_name, overrides=overrides)
        self.region = self.template.region
        self.api_port = api_port
        self.lambda_port = lambda_port
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.log_dir = Path(log_dir) if log_dir else REPO_ROOT / ".tandem" / "sessions" / stamp
        self.start_endpoint = start_endpoint
        self.endpoint_ready_timeout = endpoint_ready_timeout
        self.endpoint_args = endpoint_args or []
        self.max_workers = max_workers
        self.sqs_visibility_timeout = sqs_visibility_timeout
        self.extra_function_env = extra_function_env or {}
        # Schedule events (the watchdog's rate(5 minutes)) fire every N s locally; None: off
        self.schedule_interval_s = schedule_interval_s
        self._schedules: list[tuple[threading.Thread, threading.Event]] = []
        self.resources: dict[str, dict[str, Any]] = {}
        self.functions = self.template.functions()
        self.moto_url = ""
        self.endpoint_url = ""
        self.lambda_url = ""
        self.api_url = ""
        self._mock: Any = None
        self._moto_server: Any = None
        self._lambda: LambdaService | None = None
        self._api: LocalHttpApi | None = None
        self._endpoint: subprocess.Popen[bytes] | None = None
        self._pollers: list[Any] = []
        self._saved_env: dict[str, str | None] = {}
        self._endpoint_log: Any = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalCloud:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _setenv(self, key: str, value: str) -> None:
        if key not in self._saved_env:
            self._saved_env[key] = os.environ.get(key)
        os.environ[key] = value

    def start(self) -> LocalCloud:
        from moto import mock_aws
        from moto.server import ThreadedMotoServer

        t0 = time.monotonic()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto server access log
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # moto's interpreter logs whole state reprs at ERROR: keep them in the session log, off the console
        self._moto_log: logging.FileHandler | None = logging.FileHandler(self.log_dir / "moto.log")
        moto_logger = logging.getLogger("moto")
        moto_logger.addHandler(self._moto_log)
        moto_logger.propagate = False
        for k, v in {
            **FAKE_CREDS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }.items():
            self._setenv(k, v)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        moto_port = free_port()
        self._moto_server = ThreadedMotoServer(
            ip_address="127.0.0.1", port=moto_port, verbose=False
        )
        self._moto_server.start()
        self.moto_url = f"http://127.0.0.1:{moto_port}"
        server = self._moto_server._server  # werkzeug server: requests run `server.app`
        self.s3_faults = S3PutFaults(server.app)
        server.app = self.s3_faults
        moto_compat.apply()

        import boto3

        self.resources = create_resources(
            self.template,
            boto3.Session(region_name=self.region),
            local_queue_visibility=self.sqs_visibility_timeout,
        )
        self.endpoint_port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.endpoint_port}"

        self._lambda = LambdaService(
            self.functions,
            self._function_env,
            self.log_dir,
            port=self.lambda_port,
            max_workers=self.max_workers,
        )
        self._lambda.start()
        self.lambda_url = self._lambda.url
        # the in-process interpreter's boto3 clients: Lambda tasks -> our service, endpoint -> server
        self._setenv("AWS_ENDPOINT_URL_LAMBDA", self.lambda_url)
        self._setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", self.endpoint_url)

        if self.start_endpoint:
            self._start_endpoint()

        self._api = LocalHttpApi(
            self._lambda, routes_from_functions(self.functions), port=self.api_port
        )
        self._api.start()
        self.api_url = self._api.url
        self._start_pollers()
        if self.schedule_interval_s:
            self.start_schedules(self.schedule_interval_s)
        self.startup_s = time.monotonic() - t0
        (self.log_dir / "session.json").write_text(json.dumps(self.describe(), indent=2))
        return self

    def _function_env(self, spec: Any) -> dict[str, str]:
        env = {
            k: os.environ[k]
            for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
            if k in os.environ
        }
        env.update(spec.environment)
        env.update(FAKE_CREDS)
        env.update(
            {
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_ENDPOINT_URL": self.moto_url,
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.endpoint_url,
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
                "LAMBDA_TASK_ROOT": str(spec.code_dir),
                "ALLOW_PRIVATE_WEBHOOKS": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPATH": os.pathsep.join(
                    [str(spec.code_dir), *map(str, spec.layer_dirs), str(REPO_ROOT)]
                ),
                "TANDEM_WORKER_ROOT": str(REPO_ROOT),
            }
        )
        env.update(self.extra_function_env)
        return env

    def _start_endpoint(self) -> None:
        env = {
            k: os.environ[k]
            for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
            if k in os.environ
        }
        env.update(FAKE_CREDS)
        env.update(
            {
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_ENDPOINT_URL": self.moto_url,
                "PYTHONPATH": str(REPO_ROOT / "endpoint"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self._endpoint_log = open(self.log_dir / "endpoint.log", "ab")  # noqa: SIM115 - closed in close()
        cmd = [
            sys.executable,
            "-m",
            "tandem_endpoint",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.endpoint_port),
            "--enable-fault-injection",
            *self.endpoint_args,
        ]
        self._endpoint = subprocess.Popen(
            cmd,
            cwd=str(REPO_ROOT),
            env=env,
            stdout=self._endpoint_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.endpoint_ready_timeout
        while time.monotonic() < deadline:
            if self._endpoint.poll() is not None:
                raise RuntimeError(
                    f"endpoint exited with {self._endpoint.returncode}; see {self.log_dir / 'endpoint.log'}"
                )
            try:
                with urllib.request.urlopen(self.endpoint_url + "/ping", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"endpoint not ready after {self.endpoint_ready_timeout}s")

    def restart_endpoint(self, down_s: float = 2.0) -> None:
        """Kill the endpoint process (SIGKILL, like its instance dying), stay down `down_s`, then
        start a new one on the same port with the same args and wait for /ping 200. Requests in
        flight lose their connection; the fault plan (in the old process) is gone."""
        if self._endpoint is not None and self._endpoint.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._endpoint.pid, signal.SIGKILL)
            self._endpoint.wait(timeout=10)
        if self._endpoint_log:
            self._endpoint_log.close()
            self._endpoint_log = None
        time.sleep(down_s)
        self._start_endpoint()

    def _start_pollers(self) -> None:
        import boto3

        s3 = boto3.client("s3", region_name=self.region)
        sqs = boto3.client("sqs", region_name=self.region)
        assert self._lambda is not None
        invoke = self._lambda.invoke
        buckets = [
            r["name"]
            for r in self.resources.values()
            if r["type"] == "AWS::S3::Bucket" and r.get("eventbridge")
        ]
        rules = []
        for spec in self.functions.values():
            for ev in spec.events:
                if ev.type == "EventBridgeRule":
                    rules.append((spec.name, ev.properties["Pattern"]))
                elif ev.type == "SQS":
                    q = next(
                        r for r in self.resources.values() if r.get("arn") == ev.properties["Queue"]
                    )
                    self._pollers.append(
                        SqsPoller(
                            sqs,
                            q["url"],
                            q["arn"],
                            spec.name,
                            invoke,
                            batch_size=int(ev.properties.get("BatchSize", 10)),
                            report_batch_item_failures="ReportBatchItemFailures"
                            in (ev.properties.get("FunctionResponseTypes") or []),
                            region=self.region,
                        )
                    )
        if buckets and rules:
            self._pollers.append(S3EventBridgePoller(s3, buckets, rules, invoke))
        for p in self._pollers:
            p.start()

    def start_schedules(
        self, interval_s: float, input_overrides: dict[str, Any] | None = None
    ) -> None:
        """Invoke every function with a `Schedule` event every `interval_s` (its Input,
        updated with `input_overrides`), like EventBridge Scheduler's rate() rules."""
        assert self._lambda is not None
        for spec in self.functions.values():
            for ev in spec.events:
                if ev.type != "Schedule":
                    continue
                raw = ev.properties.get("Input")
                payload = {**(json.loads(raw) if raw else {}), **(input_overrides or {})}
                stop = threading.Event()
                t = threading.Thread(
                    target=self._schedule_loop,
                    args=(spec.name, payload, interval_s, stop),
                    name=f"schedule-{spec.logical_id}",
                    daemon=True,
                )
                t.start()
                self._schedules.append((t, stop))

    def stop_schedules(self) -> None:
        for _, stop in self._schedules:
            stop.set()
        for t, _ in self._schedules:
            t.join(timeout=30)
        self._schedules = []

    def _schedule_loop(
        self, name: str, payload: dict[str, Any], interval_s: float, stop: threading.Event
    ) -> None:
        while not stop.wait(interval_s):
            lam = self._lambda
            if lam is None:
                return
            try:
                lam.invoke(name, payload)
            except Exception:
                log.exception("scheduled invoke of %s failed", name)

    def close(self) -> None:
        self.stop_schedules()
        for p in self._pollers:
            p.stop()
        self._pollers = []
        if self._api:
            self._api.close()
            self._api = None
        if self._endpoint and self._endpoint.poll() is None:
            try:
                os.killpg(self._endpoint.pid, signal.SIGTERM)
                self._endpoint.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._endpoint.pid, signal.SIGKILL)
                self._endpoint.wait(timeout=10)
        self._endpoint = None
        if self._endpoint_log:
            self._endpoint_log.close()
            self._endpoint_log = None
        if self._lambda:
            self._lambda.close()
            self._lambda = None
        if self._moto_server:
            self._moto_server.stop()
            self._moto_server = None
        if self._mock:
            self._mock.stop()
            self._mock = None
        moto_log = getattr(self, "_moto_log", None)
        if moto_log is not None:
            logging.getLogger("moto").removeHandler(moto_log)
            logging.getLogger("moto").propagate = True
            moto_log.close()
            self._moto_log = None
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env = {}

    # ------------------------------------------------------------------ access
    def name_of(self, logical_id: str) -> str:
        return str(self.resources[logical_id]["name"])

    @property
    def bucket(self) -> str:
        return self.name_of("DataBucket")

    @property
    def jobs_table(self) -> str:
        return self.name_of("JobsTable")

    @property
    def queue_url(self) -> str:
        return str(self.resources["JobQueue"]["url"])

    @property
    def dlq_url(self) -> str:
        return str(self.resources["JobDeadLetterQueue"]["url"])

    @property
    def state_machine_arn(self) -> str:
        return str(self.resources["PipelineStateMachine"]["arn"])

    @property
    def lambda_service(self) -> LambdaService:
        assert self._lambda is not None
        return self._lambda

    def client(self, service: str) -> Any:
        """A boto3 client bound to the moto server (or the Lambda service / endpoint)."""
        import boto3

        url = {"lambda": self.lambda_url, "sagemaker-runtime": self.endpoint_url}.get(
            service, self.moto_url
        )
        return boto3.client(  # type: ignore[call-overload]
            service,
            region_name=self.region,
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def describe(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url,
            "lambda_url": self.lambda_url,
            "moto_url": self.moto_url,
            "endpoint_url": self.endpoint_url,
            "log_dir": str(self.log_dir),
            "resources": self.resources,
            "skipped": self.template.skipped(),
        }

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        from boto3.dynamodb.types import TypeDeserializer

        item = (
            self.client("dynamodb")
            .get_item(TableName=self.jobs_table, Key={"job_id": {"S": job_id}}, ConsistentRead=True)
            .get("Item")
        )
        if not item:
            return None
        d = TypeDeserializer()
        return _plain({k: d.deserialize(v) for k, v in item.items()})

    def execution_status(self, job_id: str) -> str | None:
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
        try:
            return str(self.client("stepfunctions").describe_execution(executionArn=arn)["status"])
        except Exception:
            return None

    def wait_for_job(
        self, job_id: str, timeout: float = 180.0, interval: float = 0.5
    ) -> dict[str, Any]:
        """Wait until the job is terminal AND its execution has ended; return the job item."""
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.get_job(job_id)
            if (
                job
                and job.get("status") in TERMINAL
                and self.execution_status(job_id) not in ("RUNNING",)
            ):
                return job
            time.sleep(interval)
        raise TimeoutError(
            f"job {job_id} not terminal after {timeout}s: {job and job.get('status')}"
        )

    def running_executions(self) -> int:
        sfn = self.client("stepfunctions")
        return len(
            sfn.list_executions(stateMachineArn=self.state_machine_arn, statusFilter="RUNNING")[
                "executions"
            ]
        )

    def endpoint_metrics(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.endpoint_url + "/metrics", timeout=10) as r:
            return dict(json.loads(r.read()))

    def drain(self, timeout: float = 120.0) -> None:
        """Wait until no execution runs and the endpoint has nothing in flight."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running_executions() == 0 and self.endpoint_metrics().get("in_flight", 0) == 0:
                return
            time.sleep(0.5)
        raise TimeoutError("local cloud did not drain")

    def set_lambda_faults(self, plan: dict[str, dict[str, float]] | None) -> dict[str, Any]:
        """Worker faults per function (name or logical id): `{"crash": n, "crash_after": n,
        "hang": n, "timeout_s": s}`; None clears. See `tandem.local.lambda_service`."""
        return self.lambda_service.set_faults(plan)

    def set_s3_faults(self, rules: list[dict[str, Any]] | None) -> None:
        """Fail the next `count` PutObject calls under `prefix` through the moto server:
        `[{"prefix", "count", "status": 503, "code": "SlowDown"}]`; None clears."""
        self.s3_faults.set(rules or [])

    def run_watchdog(self, deadline_seconds: int | None = None) -> dict[str, Any]:
        """Invoke the watchdog function now (through the Lambda service) and return its report."""
        event: dict[str, Any] = {}
        if deadline_seconds is not None:
            event["deadline_seconds"] = deadline_seconds
        result = self.lambda_service.invoke("WatchdogFunction", event)
        if result.error_type:
            raise RuntimeError(f"watchdog failed: {result.payload}")
        return dict(result.payload)

    def set_faults(self, plan: dict[str, Any] | None) -> dict[str, Any]:
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


def _plain(v: Any) -> Any:
    from decimal import Decimal

    if isinstance(v, Decimal):
        return int(v) if v == int(v) else float(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | set):
        return [_plain(x) for x in v]
    return v
