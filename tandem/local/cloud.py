"""LocalCloud: the whole pipeline on one machine, built from template.yaml
(docs/ARCHITECTURE.md, "The local cloud").

Start order: in-process moto (`mock_aws`, real ASL interpreter) -> ThreadedMotoServer on a free
port (same state) -> moto compat patches -> the template's resources -> the local Lambda
service -> the real endpoint server (subprocess) -> the local HTTP API -> S3/SQS pollers.

`LocalCloud` only starts, stops and hands out its parts: `jobs` (JobInspector), `endpoint`
(EndpointProcess), `faults` (endpoint, lambdas, s3, async_front), `schedules`, `lambda_service`,
`requests` (the moto server's request counts), and with `EndpointMode=async` the `async_front`
(SageMaker's async platform in front of the endpoint process, on the endpoint URL).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from tandem.local import LOCAL_CREDENTIALS, local_client, moto_compat
from tandem.local.async_front import AsyncEndpointConfig, AsyncFront
from tandem.local.endpoint_process import EndpointProcess
from tandem.local.event_sources import S3EventBridgePoller, SnsLambdaDelivery, SqsPoller
from tandem.local.faults import EndpointFaults, Faults, LambdaFaults, S3PutFaults, VectorFaults
from tandem.local.http_api import LocalHttpApi, routes_from_functions
from tandem.local.http_server import reachable_host
from tandem.local.inspection import JobInspector
from tandem.local.lambda_service import REPO_ROOT, LambdaService
from tandem.local.meter import RequestMeter
from tandem.local.schedules import Schedules
from tandem.local.seed import SeedTarget, load_seed
from tandem.local.state import STATE_FILE, LocalCloudState, remove_state, write_state
from tandem.local.template import (
    FunctionSpec,
    LocalTemplate,
    create_resources,
    delete_resources,
)

log = logging.getLogger(__name__)

# Template parameters sized to the local CPU endpoint (a few chunks/s): Map concurrency is
# "sized to the endpoint's capacity" (docs/ARCHITECTURE.md), and small batches keep each forward
# pass well inside the InvokeEndpoint task's 75 s timeout.
LOCAL_PARAMETERS = {"MapMaxConcurrency": "2", "BatchSize": "16"}
# `tandem local up`'s ports (env.json names the moto and endpoint ones for `sam local invoke`).
DEFAULT_PORTS = {"api": 3000, "lambda": 3001, "moto": 3002, "endpoint": 3003}
__all__ = ["DEFAULT_PORTS", "LOCAL_PARAMETERS", "STATE_FILE", "LocalCloud", "serve_until_stopped"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
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
        host: str = "127.0.0.1",
        moto_port: int = 0,
        endpoint_port: int = 0,
        seed: str | Path | None = None,
        state_file: str | Path | None = None,
        scale_to_zero_after_s: float | None = None,
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
        # every service binds `host` (0.0.0.0: reachable from containers, see the README)
        self.host = host
        self.moto_port = moto_port
        self.endpoint_port = endpoint_port
        self.seed_path = Path(seed) if seed else None
        self._seed = load_seed(seed) if seed else None  # a bad file fails before anything starts
        self.state_file = Path(state_file) if state_file else None
        self.parameter_overrides = overrides
        # EndpointMode=async: the async front answers on the endpoint URL, the model behind it
        self.endpoint_mode = str(self.template.parameters.get("EndpointMode", "realtime"))
        self.scale_to_zero_after_s = scale_to_zero_after_s
        self._async_front: AsyncFront | None = None
        self.seeded: list[str] = []
        self.resources: dict[str, dict[str, Any]] = {}
        self.functions: dict[str, FunctionSpec] = self.template.functions()
        self.moto_url = ""
        self.endpoint_url = ""
        self.lambda_url = ""
        self.api_url = ""
        self._mock: Any = None
        self._moto_server: Any = None
        self._moto_log: logging.FileHandler | None = None
        self._lambda: LambdaService | None = None
        self._api: LocalHttpApi | None = None
        self._endpoint: EndpointProcess | None = None
        self._pollers: list[Any] = []
        self._sns_deliveries: list[SnsLambdaDelivery] = []
        self._schedules: Schedules | None = None
        self._saved_env: dict[str, str | None] = {}
        self._faults: Faults | None = None
        self._jobs: JobInspector | None = None

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
        import boto3

        t0 = time.monotonic()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        s3_faults, vector_faults = self._start_moto()
        self.resources = create_resources(
            self.template,
            boto3.Session(region_name=self.region),
            local_queue_visibility=self.sqs_visibility_timeout,
        )
        is_async = self.endpoint_mode == "async"
        model_port = (
            free_port(self.host) if is_async else self.endpoint_port or free_port(self.host)
        )
        self._endpoint = EndpointProcess(
            model_port,
            self.moto_url,
            self.region,
            self.log_dir / "endpoint.log",
            self.endpoint_args,
            self.endpoint_ready_timeout,
            host=self.host,
        )
        self.endpoint_url = self._endpoint.url
        if is_async:
            self._async_front = AsyncFront(
                AsyncEndpointConfig.from_template(self.template),
                self._endpoint,
                self.moto_url,
                self.region,
                host=self.host,
                port=self.endpoint_port,
                idle_s=self.scale_to_zero_after_s,
            )
            self.endpoint_url = self._async_front.url  # the runtime API the functions call
        self._lambda = LambdaService(
            self.functions,
            self._function_env,
            self.log_dir,
            host=self.host,
            port=self.lambda_port,
            max_workers=self.max_workers,
        )
        self._lambda.start()
        self.lambda_url = self._lambda.url
        # the in-process interpreter's boto3 clients: Lambda tasks -> our service, endpoint -> server
        self._setenv("AWS_ENDPOINT_URL_LAMBDA", self.lambda_url)
        self._setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", self.endpoint_url)
        self._route_sns()
        self._faults = Faults(
            EndpointFaults(self._endpoint.url), LambdaFaults(self._lambda), s3_faults, vector_faults
        )
        self._faults.async_front = self._async_front
        self._jobs = JobInspector(
            self.client("dynamodb"),
            self.client("stepfunctions"),
            self.client("s3"),
            self.bucket,
            self.jobs_table,
            self.state_machine_arn,
            self._async_front.metrics if self._async_front else self._endpoint.metrics,
            self.express_state_machine_arn,
        )
        self._schedules = Schedules(self.functions, self._lambda)
        if self.start_endpoint:
            self._endpoint.start()
        if self._async_front is not None:
            self._async_front.start()
        self._api = LocalHttpApi(
            self._lambda, routes_from_functions(self.functions), host=self.host, port=self.api_port
        )
        self._api.start()
        self.api_url = self._api.url
        if self._seed is not None:
            target = SeedTarget.from_state(self.template.path, self.state())
            self.seeded = self._seed.apply(target)
        self._start_pollers()
        if self.schedule_interval_s:
            self._schedules.start(self.schedule_interval_s)
        self.startup_s = time.monotonic() - t0
        (self.log_dir / "session.json").write_text(json.dumps(self.describe(), indent=2))
        if self.state_file is not None:
            write_state(self.state_file, self.state())
        return self

    def _start_moto(self) -> tuple[S3PutFaults, VectorFaults]:
        """In-process moto with the real ASL interpreter, and a moto server on the same state
        (with the S3 and S3 Vectors fault middleware in front of it). Returns those."""
        from moto import mock_aws
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto server access log
        # moto's interpreter logs whole state reprs at ERROR: keep them in the session log
        self._moto_log = logging.FileHandler(self.log_dir / "moto.log")
        moto_logger = logging.getLogger("moto")
        moto_logger.addHandler(self._moto_log)
        moto_logger.propagate = False
        for k, v in {
            **LOCAL_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }.items():
            self._setenv(k, v)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        moto_port = self.moto_port or free_port(self.host)
        self._moto_server = ThreadedMotoServer(ip_address=self.host, port=moto_port, verbose=False)
        self._moto_server.start()
        self.moto_url = f"http://{reachable_host(self.host)}:{moto_port}"
        server = self._moto_server._server  # werkzeug server: requests run `server.app`
        vector_faults = VectorFaults(server.app)
        s3_faults = S3PutFaults(vector_faults)
        self.requests = RequestMeter(s3_faults)
        server.app = self.requests
        moto_compat.apply()
        return s3_faults, vector_faults

    def _function_env(self, spec: FunctionSpec) -> dict[str, str]:
        env = {
            k: os.environ[k]
            for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
            if k in os.environ
        }
        env.update(spec.environment)
        env.update(LOCAL_CREDENTIALS)
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

    def _route_sns(self) -> None:
        """moto's SNS -> Lambda delivery needs Docker: each subscribed function gets its
        messages through this cloud's Lambda service (moto_compat gap 10)."""
        for spec in self.functions.values():
            if any(ev.type == "SNS" for ev in spec.events):
                delivery = SnsLambdaDelivery(spec.name, self.lambda_service.invoke)
                moto_compat.route_sns_to_lambda(spec.arn, delivery)
                self._sns_deliveries.append(delivery)

    def _start_pollers(self) -> None:
        s3 = self.client("s3")
        sqs = self.client("sqs")
        invoke = self.lambda_service.invoke
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
            self._pollers.append(S3EventBridgePoller(s3, buckets, rules, invoke).skip_existing())
        for p in self._pollers:
            p.start()

    def close(self) -> None:
        if self.state_file is not None:
            remove_state(self.state_file)
        if self._schedules is not None:
            self._schedules.stop()
        for p in self._pollers:
            p.stop()
        self._pollers = []
        if self._api:
            self._api.close()
            self._api = None
        if self._async_front is not None:
            self._async_front.close()
            self._async_front = None
        for spec in self.functions.values():
            moto_compat.route_sns_to_lambda(spec.arn, None)
        for delivery in self._sns_deliveries:
            delivery.close()  # before the Lambda service stops
        self._sns_deliveries = []
        if self._endpoint is not None:
            self._endpoint.stop()
        if self._lambda:
            self._lambda.close()
            self._lambda = None
        self._delete_resources_if_shared()
        if self._moto_server:
            self._moto_server.stop()
            self._moto_server = None
        if self._mock:
            self._mock.stop()
            self._mock = None
        if self._moto_log is not None:
            logging.getLogger("moto").removeHandler(self._moto_log)
            logging.getLogger("moto").propagate = True
            self._moto_log.close()
            self._moto_log = None
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env = {}

    def _delete_resources_if_shared(self) -> None:
        """Another local cloud in this process keeps moto's state alive after this one stops:
        remove this stack's resources, so a cloud of the same stack name can start later (the
        last mock to stop clears everything itself)."""
        if self._mock is None or not self.resources or type(self._mock)._nested_count < 2:
            return
        import boto3

        try:
            delete_resources(boto3.Session(region_name=self.region), self.resources, self.region)
        except Exception:
            log.exception("could not remove the resources of stack %s", self.template.stack_name)
        self.resources = {}

    # ------------------------------------------------------------------ accessors
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
    def vector_index_arn(self) -> str:
        """The S3 Vectors index ("" when the template's VectorIndexing is false)."""
        return str(self.resources.get("VectorIndex", {}).get("arn", ""))

    @property
    def state_machine_arn(self) -> str:
        return str(self.resources["PipelineStateMachine"]["arn"])

    @property
    def express_state_machine_arn(self) -> str:
        """The Express workflow's ARN ("" for a template without one)."""
        return str(self.resources.get("ExpressStateMachine", {}).get("arn", ""))

    @property
    def lambda_service(self) -> LambdaService:
        assert self._lambda is not None
        return self._lambda

    @property
    def jobs(self) -> JobInspector:
        assert self._jobs is not None
        return self._jobs

    @property
    def endpoint(self) -> EndpointProcess:
        assert self._endpoint is not None
        return self._endpoint

    @property
    def faults(self) -> Faults:
        assert self._faults is not None
        return self._faults

    @property
    def async_front(self) -> AsyncFront:
        assert self._async_front is not None, "the local cloud runs EndpointMode=realtime"
        return self._async_front

    @property
    def schedules(self) -> Schedules:
        assert self._schedules is not None
        return self._schedules

    def client(self, service: str) -> Any:
        """A boto3 client bound to the moto server (or the Lambda service / endpoint)."""
        url = {"lambda": self.lambda_url, "sagemaker-runtime": self.endpoint_url}.get(
            service, self.moto_url
        )
        return local_client(service, url, self.region)

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

    def state(self) -> LocalCloudState:
        """What `tandem local invoke` needs to resolve a function's environment against us."""
        return LocalCloudState(
            pid=os.getpid(),
            stack_name=self.template.stack_name,
            region=self.region,
            parameter_overrides=dict(self.parameter_overrides),
            host=self.host,
            api_url=self.api_url,
            lambda_url=self.lambda_url,
            moto_url=self.moto_url,
            endpoint_url=self.endpoint_url,
            log_dir=str(self.log_dir),
        )


def serve_until_stopped(cloud: LocalCloud, echo: Callable[[str], Any]) -> None:
    """`tandem local up`: print where everything is, then serve until Ctrl-C or SIGTERM."""
    echo(f"API: {cloud.api_url}")
    echo(
        f"Lambda service: {cloud.lambda_url}  (aws lambda invoke --endpoint-url {cloud.lambda_url} ...)"
    )
    echo(f"moto (S3, DynamoDB, SQS, Step Functions): {cloud.moto_url}")
    if cloud.endpoint_mode == "async":
        echo(
            f"endpoint (async: InvokeEndpointAsync, SNS notifications): {cloud.endpoint_url}; "
            f"the model behind it: {cloud.endpoint.url}"
        )
        if cloud.scale_to_zero_after_s is not None:
            echo(f"scales to zero after {cloud.scale_to_zero_after_s:g} s idle")
    else:
        echo(f"endpoint: {cloud.endpoint_url}")
    if cloud.host != "127.0.0.1":
        echo(
            f"listening on {cloud.host}: from a `sam local invoke` container these are "
            "http://host.docker.internal:<port> (env.json, `--config-env local`)"
        )
    echo(f"data bucket: {cloud.bucket}  job queue: {cloud.queue_url}")
    if cloud.vector_index_arn:
        echo(f"vector index (S3 Vectors, on the moto URL): {cloud.vector_index_arn}")
    if cloud.seed_path is not None:
        echo(f"seeded from {cloud.seed_path}: {', '.join(cloud.seeded) or 'nothing'}")
    echo(f"logs: {cloud.log_dir}")
    echo(
        f"metrics: CloudWatch EMF lines in the function logs ({cloud.log_dir}/<function>.log); "
        "`tandem local metrics` sums them up"
    )
    echo("ready; Ctrl-C to stop")
    stop = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop["flag"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    echo("stopping...")
