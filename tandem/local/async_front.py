"""SageMaker Asynchronous Inference, locally: the platform in front of the endpoint process
(`tandem local up --endpoint-mode async`), so the whole async path runs without an AWS account.

What SageMaker does for an async endpoint, this does, from the template's own
`EndpointConfig.AsyncInferenceConfig` (output and failure paths, SNS topics,
`MaxConcurrentInvocationsPerInstance`):

- `POST /endpoints/{name}/async-invocations`, botocore's `sagemaker-runtime`
  `InvokeEndpointAsync` (its service model: `X-Amzn-SageMaker-InputLocation`, `-Inference-Id`,
  `-Content-Type`, `-Accept`, `-RequestTTLSeconds`, `-InvocationTimeoutSeconds` headers) -> 202
  `{"InferenceId"}` with `X-Amzn-SageMaker-OutputLocation` and `-FailureLocation`. The request
  waits in a queue. Anything else on this endpoint is refused (`ValidationError`): an async
  endpoint answers only async invocations.
- Up to MaxConcurrentInvocationsPerInstance workers take requests in order: each reads the body
  from its InputLocation in S3, POSTs it to the container's `/invocations` (the hosting protocol,
  the same server and batching as the real-time path), writes the container's answer to
  `<S3OutputPath><uuid>.out` (an error answer to `<S3FailurePath><uuid>-error.out`), then
  publishes the success or error notification to the topic. A request still queued after its
  RequestTTLSeconds, or not answered within its InvocationTimeoutSeconds, fails.
- Scale to zero (`idle_s`): with nothing queued or running for that long the container is
  stopped (0 instances). The next request waits in the queue while it starts again: the cold
  start, recorded in `metrics()["cold_starts_s"]` (docs/BENCHMARKS.md measures it). A container
  that died is replaced the same way.

Faults for the tests (`set_faults`), each `{"count": n, "match": "<part of the inference id>"}`:
`drop_notification` (the result is written, its notification is lost), `duplicate_notification`
(published twice), `lose_request` (accepted, then never run: no result, no notification).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlparse

from tandem.local import local_client
from tandem.local.endpoint_process import EndpointProcess
from tandem.local.http_server import BackgroundHttpServer
from tandem.local.template import LocalTemplate

log = logging.getLogger(__name__)

FAULT_KINDS = ("drop_notification", "duplicate_notification", "lose_request")


@dataclass(frozen=True)
class AsyncEndpointConfig:
    """The endpoint config's AsyncInferenceConfig, as the template states it."""

    endpoint_name: str
    output_path: str
    failure_path: str
    success_topic: str
    error_topic: str
    max_concurrent: int

    @classmethod
    def from_template(cls, tpl: LocalTemplate) -> AsyncEndpointConfig:
        raw = tpl.resources["EndpointConfig"]["Properties"]["AsyncInferenceConfig"]
        cfg = tpl.resolve(raw)
        if not cfg:
            raise ValueError("the template's EndpointConfig has no AsyncInferenceConfig")
        output = cfg["OutputConfig"]
        return cls(
            endpoint_name=str(tpl.parameters["EndpointName"]),
            output_path=str(output["S3OutputPath"]),
            failure_path=str(output["S3FailurePath"]),
            success_topic=str(output["NotificationConfig"]["SuccessTopic"]),
            error_topic=str(output["NotificationConfig"]["ErrorTopic"]),
            max_concurrent=int(cfg["ClientConfig"]["MaxConcurrentInvocationsPerInstance"]),
        )


@dataclass
class AsyncRequest:
    inference_id: str
    input_location: str
    output_location: str
    failure_location: str
    content_type: str
    accept: str
    ttl_s: int
    timeout_s: int
    received: datetime = field(default_factory=lambda: datetime.now(UTC))
    accepted_at: float = field(default_factory=time.monotonic)


class AsyncFront:
    def __init__(
        self,
        config: AsyncEndpointConfig,
        endpoint: EndpointProcess,
        moto_url: str,
        region: str,
        host: str = "127.0.0.1",
        port: int = 0,
        idle_s: float | None = None,
    ) -> None:
        self.config = config
        self.endpoint = endpoint
        self.region = region
        self.idle_s = idle_s
        self.s3 = local_client("s3", moto_url, region)
        self.sns = local_client("sns", moto_url, region)
        self._queue: queue.Queue[AsyncRequest] = queue.Queue()
        self._lock = threading.Lock()
        self._faults: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._running = 0
        self._last_activity = time.monotonic()
        self.counts: dict[str, int] = dict.fromkeys(
            ("accepted", "succeeded", "failed", "expired", "lost", "notified", "scale_ins"), 0
        )
        self.cold_starts_s: list[float] = []
        self.fault_log: list[tuple[str, str]] = []  # (fault, inference id)
        self._server = BackgroundHttpServer(self._handle, host, port, "async-front")
        self.url = self._server.url
        self._threads = [
            threading.Thread(target=self._work, name=f"async-worker-{i}", daemon=True)
            for i in range(config.max_concurrent)
        ]
        self._threads.append(
            threading.Thread(target=self._scale_in, name="async-idle", daemon=True)
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> AsyncFront:
        self._server.start()
        for t in self._threads:
            t.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        for t in self._threads:
            t.join(timeout=30)

    # ------------------------------------------------------------------ faults, metrics
    def set_faults(self, plan: dict[str, dict[str, Any]] | None) -> None:
        """`{kind: {"count": n, "match": "..."}}` (kinds: FAULT_KINDS); None clears."""
        faults = {}
        for kind, spec in (plan or {}).items():
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown async fault {kind!r}; one of {FAULT_KINDS}")
            faults[kind] = {"count": int(spec.get("count", 1)), "match": str(spec.get("match", ""))}
        with self._lock:
            self._faults = faults

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def _take_fault(self, kind: str, inference_id: str) -> bool:
        with self._lock:
            fault = self._faults.get(kind)
            if not fault or fault["count"] < 1 or fault["match"] not in inference_id:
                return False
            fault["count"] -= 1
            self.fault_log.append((kind, inference_id))
            return True

    def metrics(self) -> dict[str, Any]:
        with self._lock:
            busy = self._queue.qsize() + self._running
            return {
                "in_flight": busy,  # queued or running (JobInspector.drain waits for 0)
                "queued": self._queue.qsize(),
                "running": self._running,
                "instances": int(self.endpoint.running),
                **self.counts,
                "cold_starts_s": list(self.cold_starts_s),
            }

    # ------------------------------------------------------------------ the runtime API
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        parts = urlparse(h.path).path.strip("/").split("/")
        if h.command != "POST" or len(parts) != 3 or parts[0] != "endpoints":
            return self._error(h, 404, "UnknownOperationException", f"{h.command} {h.path}")
        name, action = unquote(parts[1]), parts[2]
        if name != self.config.endpoint_name:
            return self._error(h, 400, "ValidationError", f"Endpoint {name} not found.")
        if action != "async-invocations":
            return self._error(
                h,
                400,
                "ValidationError",
                f"Endpoint {name} is an asynchronous inference endpoint: use InvokeEndpointAsync.",
            )
        location = h.headers.get("X-Amzn-SageMaker-InputLocation") or ""
        if not location.startswith("s3://"):
            return self._error(h, 400, "ValidationError", "InputLocation must be an s3:// URI")
        name_id = str(uuid.uuid4())
        request = AsyncRequest(
            inference_id=h.headers.get("X-Amzn-SageMaker-Inference-Id") or name_id,
            input_location=location,
            output_location=f"{self.config.output_path}{name_id}.out",
            failure_location=f"{self.config.failure_path}{name_id}-error.out",
            content_type=h.headers.get("X-Amzn-SageMaker-Content-Type") or "application/json",
            accept=h.headers.get("X-Amzn-SageMaker-Accept") or "application/json",
            ttl_s=int(h.headers.get("X-Amzn-SageMaker-RequestTTLSeconds") or 21600),
            timeout_s=int(h.headers.get("X-Amzn-SageMaker-InvocationTimeoutSeconds") or 900),
        )
        with self._lock:
            self.counts["accepted"] += 1
            self._last_activity = time.monotonic()
            self._queue.put(request)
        body = json.dumps({"InferenceId": request.inference_id}).encode()
        self._send(
            h,
            202,
            body,
            {
                "X-Amzn-SageMaker-OutputLocation": request.output_location,
                "X-Amzn-SageMaker-FailureLocation": request.failure_location,
            },
        )

    def _error(self, h: BaseHTTPRequestHandler, status: int, kind: str, message: str) -> None:
        body = json.dumps({"message": message}).encode()
        self._send(h, status, body, {"x-amzn-ErrorType": kind})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        h.send_response(status)
        for k, v in {
            **headers,
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "x-amzn-RequestId": str(uuid.uuid4()),
        }.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    # ------------------------------------------------------------------ the instances
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                request = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            with self._lock:
                self._running += 1
            try:
                self._run(request)
            except Exception:  # one request's failure must not stop the worker
                log.exception("async inference %s failed in the local front", request.inference_id)
            finally:
                with self._lock:
                    self._running -= 1
                    self._last_activity = time.monotonic()

    def _run(self, request: AsyncRequest) -> None:
        if time.monotonic() - request.accepted_at > request.ttl_s:
            self._count("expired")
            reason = f"Request expired: not started within RequestTTLSeconds ({request.ttl_s})"
            return self._notify(request, None, reason)
        if self._take_fault("lose_request", request.inference_id):
            self._count("lost")
            return None
        started = time.monotonic()
        if self.endpoint.ensure_started():  # from 0 instances (or a dead one replaced)
            self.cold_starts_s.append(round(time.monotonic() - started, 3))
        try:
            body = self._read(request.input_location)
        except Exception as exc:  # the platform reports it as the inference's failure
            return self._notify(request, None, f"ClientError: could not read the input: {exc}")
        try:
            status, ctype, answer = self._invoke(request, body)
        except TimeoutError:
            return self._notify(
                request,
                None,
                f"ModelError: the model did not answer within {request.timeout_s} s "
                "(InvocationTimeoutSeconds)",
            )
        except OSError as exc:  # the instance died or restarted mid-request
            return self._notify(request, None, f"InternalServerError: the instance failed: {exc}")
        if 200 <= status < 300:
            self._write(request.output_location, answer, ctype)
            return self._notify(request, ctype, None)
        self._write(request.failure_location, answer, ctype)
        kind = "server" if status >= 500 else "client"
        reason = (
            f"ClientError: Received {kind} error ({status}) from model. See the SageMaker "
            "Endpoint logs in your account for more information."
        )
        return self._notify(request, ctype, reason)

    def _invoke(self, request: AsyncRequest, body: bytes) -> tuple[int, str, bytes]:
        req = urllib.request.Request(
            self.endpoint.url + "/invocations",
            data=body,
            method="POST",
            headers={"Content-Type": request.content_type, "Accept": request.accept},
        )
        try:
            with urllib.request.urlopen(req, timeout=request.timeout_s) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("Content-Type", ""), err.read()

    def _read(self, uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def _write(self, uri: str, body: bytes, content_type: str) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        self.s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=content_type or "application/json"
        )

    def _notify(self, request: AsyncRequest, content_type: str | None, failure: str | None) -> None:
        """The notification SageMaker publishes once the inference ended."""
        succeeded = failure is None
        self._count("succeeded" if succeeded else "failed")
        response: dict[str, Any] = {"contentType": content_type or "application/json"}
        response["outputLocation" if succeeded else "failureLocation"] = (
            request.output_location if succeeded else request.failure_location
        )
        message: dict[str, Any] = {
            "awsRegion": self.region,
            "eventTime": _iso(datetime.now(UTC)),
            "receivedTime": _iso(request.received),
            "invocationStatus": "Completed" if succeeded else "Failed",
            "requestParameters": {
                "accept": request.accept,
                "contentType": request.content_type,
                "endpointName": self.config.endpoint_name,
                "inputLocation": request.input_location,
            },
            "responseParameters": response,
            "inferenceId": request.inference_id,
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
        }
        if not succeeded:
            message["failureReason"] = failure
        if self._take_fault("drop_notification", request.inference_id):
            return
        copies = 2 if self._take_fault("duplicate_notification", request.inference_id) else 1
        topic = self.config.success_topic if succeeded else self.config.error_topic
        for _ in range(copies):
            self.sns.publish(TopicArn=topic, Message=json.dumps(message))
            self._count("notified")

    def _scale_in(self) -> None:
        """Scale to zero: stop the container once nothing was queued or running for idle_s."""
        while not self._stop.wait(0.5):
            if self.idle_s is None:
                continue
            with self._lock:
                idle = self._queue.qsize() == 0 and self._running == 0
                quiet = time.monotonic() - self._last_activity >= self.idle_s
                if idle and quiet and self.endpoint.running:
                    self.endpoint.stop()
                    self.counts["scale_ins"] += 1


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
