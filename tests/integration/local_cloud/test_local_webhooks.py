"""Webhooks end to end through the local cloud: a receiver on 127.0.0.1 that verifies every
delivery with the `standardwebhooks` library, retries from the webhook queue (503, 429 with
Retry-After, 500s), 410 stopping delivery, and the outcome in GET /v1/jobs/{id}.

The session's local cloud runs the webhook schedule "1,1,1" (conftest.py): 4 attempts, 1 s apart.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tandem.local.http_server import BackgroundHttpServer

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "bG9jYWwtY2xvdWQtd2ViaG9vay1yZWNlaXZlci1rZXk="
FINAL = {"delivered", "failed", "stopped"}


@dataclass
class Delivery:
    at: float
    webhook_id: str
    body: bytes
    payload: Any  # what standardwebhooks.Webhook.verify returned


@dataclass
class Receiver:
    """Answers each request from `script` (the last entry repeats) after verifying it with the
    library; a request that does not verify is recorded in `refused` and answered 400."""

    script: list[tuple[int, dict[str, str]]]
    deliveries: list[Delivery] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("content-length") or 0))
        headers = dict(request.headers.items())
        extra: dict[str, str] = {}
        try:
            payload = Webhook(SECRET).verify(body, headers)
        except WebhookVerificationError as exc:
            with self.lock:
                self.refused.append(str(exc))
            status = 400
        else:
            with self.lock:
                self.deliveries.append(Delivery(time.time(), headers["webhook-id"], body, payload))
                n = len(self.deliveries)
            status, extra = self.script[min(n, len(self.script)) - 1]
        request.send_response(status)
        for k, v in extra.items():
            request.send_header(k, v)
        request.send_header("content-length", "0")
        request.end_headers()


@pytest.fixture
def receiver_for() -> Iterator[Any]:
    servers: list[BackgroundHttpServer] = []

    def start(*script: tuple[int, dict[str, str]]) -> tuple[Receiver, str]:
        receiver = Receiver(list(script))
        server = BackgroundHttpServer(receiver.handle, name="webhook-receiver").start()
        servers.append(server)
        return receiver, f"{server.url}/hooks/tandem"

    yield start
    for server in servers:
        server.close()


def _request(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url,
        data=data,
        method="GET" if body is None else "POST",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _webhook_settled(cloud: Any, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
    """GET /v1/jobs/{id} once its webhook has an outcome other than pending."""
    deadline = time.monotonic() + timeout
    while True:
        status, view = _request(f"{cloud.api_url}/v1/jobs/{job_id}")
        assert status == 200, view
        if (view.get("webhook") or {}).get("state") in FINAL:
            return view
        if time.monotonic() > deadline:
            raise TimeoutError(f"webhook of {job_id} still {view.get('webhook')}")
        time.sleep(0.5)


def test_a_job_webhook_reaches_a_standardwebhooks_receiver_after_retries(
    drained: Any, receiver_for: Any
) -> None:
    cloud = drained
    # Given a receiver that is down (503), then throttles (429, Retry-After: 2), then accepts
    receiver, url = receiver_for((503, {}), (429, {"Retry-After": "2"}), (204, {}))
    # When a job with that webhook runs
    status, accepted = _request(
        f"{cloud.api_url}/v1/jobs",
        {
            "documents": [{"id": "a", "text": "Webhooks tell the receiver the job is done."}],
            "options": {"webhook_url": url, "webhook_secret": SECRET},
        },
    )
    assert status == 202, accepted
    job_id = accepted["job_id"]
    assert cloud.jobs.wait(job_id)["status"] == "SUCCEEDED"
    view = _webhook_settled(cloud, job_id)
    # Then the third attempt delivered it, and every attempt verified with the library
    webhook = view["webhook"]
    assert (webhook["state"], webhook["attempts"], webhook["last_status"]) == (
        "delivered",
        3,
        204,
    )
    assert webhook["last_error"] is None and webhook["next_attempt_at"] is None
    assert webhook["first_attempt_at"] < webhook["last_attempt_at"]
    assert receiver.refused == [] and len(receiver.deliveries) == 3
    # the same webhook-id and body on every attempt: receivers can dedupe
    assert {d.webhook_id for d in receiver.deliveries} == {webhook["id"]}
    assert len({d.body for d in receiver.deliveries}) == 1
    payload = receiver.deliveries[0].payload
    assert payload["type"] == "job.succeeded"
    assert payload["timestamp"] == view["timings"]["finished_at"]
    assert payload["data"] == {
        "job_id": job_id,
        "status": "SUCCEEDED",
        "counts": view["counts"],
        "manifest_uri": view["manifest_uri"],
    }
    # the 429's Retry-After (2 s, more than the schedule's 1 s) was waited out: a lower bound
    # the queue guarantees (the slack covers clock adjustments only)
    assert receiver.deliveries[2].at - receiver.deliveries[1].at >= 1.9


def _failed_job(cloud: Any, url: str) -> str:
    """A job whose input does not exist: preprocess fails, the fail handler finishes it."""
    missing = f"s3://{cloud.bucket}/staging/missing-{uuid.uuid4()}.txt"
    status, accepted = _request(
        f"{cloud.api_url}/v1/jobs",
        {"source": {"s3_uri": missing}, "options": {"webhook_url": url, "webhook_secret": SECRET}},
    )
    assert status == 202, accepted
    assert cloud.jobs.wait(accepted["job_id"])["status"] == "FAILED"
    return str(accepted["job_id"])


def test_a_410_stops_delivery_after_one_attempt(drained: Any, receiver_for: Any) -> None:
    receiver, url = receiver_for((410, {}))
    job_id = _failed_job(drained, url)
    webhook = _webhook_settled(drained, job_id)["webhook"]
    assert (webhook["state"], webhook["attempts"], webhook["last_status"]) == ("stopped", 1, 410)
    assert len(receiver.deliveries) == 1
    assert receiver.deliveries[0].payload["type"] == "job.failed"


def test_a_receiver_that_keeps_failing_gets_every_attempt_then_failed(
    drained: Any, receiver_for: Any
) -> None:
    receiver, url = receiver_for((500, {}))
    job_id = _failed_job(drained, url)
    webhook = _webhook_settled(drained, job_id)["webhook"]
    assert (webhook["state"], webhook["attempts"], webhook["max_attempts"]) == ("failed", 4, 4)
    assert (webhook["last_status"], webhook["last_error"]) == (500, "HTTP 500")
    assert len(receiver.deliveries) == 4 and receiver.refused == []
    assert {d.webhook_id for d in receiver.deliveries} == {webhook["id"]}


def test_a_secret_that_is_not_whsec_is_a_422_naming_the_format(cloud: Any) -> None:
    status, body = _request(
        f"{cloud.api_url}/v1/jobs",
        {
            "documents": [{"id": "a", "text": "x"}],
            "options": {"webhook_url": "http://127.0.0.1:9/h", "webhook_secret": "s3cret-s3cret"},
        },
    )
    assert status == 422 and body["error"]["code"] == "validation_error"
    assert "'whsec_' followed by the base64 of 24 to 64 random bytes" in body["error"]["message"]
