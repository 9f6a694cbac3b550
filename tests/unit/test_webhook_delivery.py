"""Durable webhook delivery (usecases/webhook_delivery.py) against moto's SQS and DynamoDB: the
schedule, Retry-After, 410, the final failure, waits longer than SQS's 900 s, duplicates and
racing consumers, and the webhook function end to end to a receiver using `standardwebhooks`."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import boto3
import pytest
from conftest import JOBS_TABLE
from samtranslator.yaml_helper import yaml_parse
from standardwebhooks import Webhook
from tandem_common.adapters.jobs import JobStore, utc_now
from tandem_common.adapters.queues import Queue
from tandem_common.adapters.webhooks import HttpResult
from tandem_common.contracts import webhook_message_id
from tandem_common.models import Counts, JobRecord, ResolvedOptions, ValidationError, WebhookOutcome
from tandem_common.settings import Settings, get_settings
from tandem_common.usecases.webhook_delivery import (
    attempt_delivery,
    epoch,
    start_delivery,
    webhook_body,
)
from test_job_races import item_level_atomicity, race

from tandem.local.http_server import BackgroundHttpServer

__all__ = ["item_level_atomicity"]  # the autouse fixture: DynamoDB's per-item atomicity in moto

JOB = "0b9e6d3c-5f1a-4c2e-9a7b-1d2e3f405162"  # the job of events/webhook/*.json
SECRET = "whsec_" + "dGFuZGVtLXdlYmhvb2stdGVzdC1zZWNyZXQtMzJieXRlcw=="
URL = "https://hooks.example.com/tandem"
T0 = 1_800_000_000.0
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RecordingSqs:
    """The real (moto) SQS client, keeping each send_message call for the test to read."""

    def __init__(self) -> None:
        self.client = boto3.client("sqs")
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> Any:
        self.sent.append(kwargs)
        return self.client.send_message(**kwargs)

    def last(self) -> tuple[dict[str, Any], int]:
        call = self.sent[-1]
        return json.loads(call["MessageBody"]), call["DelaySeconds"]


@dataclass
class Receiver:
    """Plays the receiver: answers from a script, records what each attempt carried."""

    script: list[HttpResult]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, url: str, secret: str, msg_id: str, body: bytes, **kw: Any) -> HttpResult:
        self.calls.append({"url": url, "secret": secret, "msg_id": msg_id, "body": body, **kw})
        return self.script[min(len(self.calls), len(self.script)) - 1]


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    settings: Settings
    store: JobStore
    sqs: RecordingSqs
    queue: Queue
    clock: Clock

    def attempt(self, receiver: Receiver, body: dict[str, Any] | None = None) -> str:
        message = body if body is not None else self.sqs.last()[0]
        return attempt_delivery(
            json.dumps(message),
            self.settings,
            self.store,
            self.queue,
            send=receiver,
            clock=self.clock,
            jitter=lambda: 0.5,
        )

    def webhook(self) -> dict[str, Any]:
        job = self.store.require(JOB)
        assert job.webhook is not None
        return job.webhook.model_dump()


def finished_job(store: JobStore, url: str = URL, secret: str = SECRET) -> JobRecord:
    now = utc_now()
    job = JobRecord(
        job_id=JOB,
        status="SUCCEEDED",
        source="api",
        input_uri=f"s3://tandem-data/jobs/{JOB}/input/documents.jsonl",
        options=ResolvedOptions(chunk_tokens=256, chunk_overlap=32, batch_size=64),
        counts=Counts(documents=2, chunks=2, embedded=2),
        manifest_uri=f"s3://tandem-data/jobs/{JOB}/result/manifest.json",
        created_at=now,
        updated_at=now,
        finished_at="2026-11-27T05:15:00.000Z",
        expires_at=2_000_000_000,
        webhook_url=url,
        webhook_secret=secret,
    )
    store.create(job)
    return job


@pytest.fixture
def world(cloud: None) -> World:
    sqs = RecordingSqs()
    url = sqs.client.create_queue(QueueName="tandem-WebhookQueue")["QueueUrl"]
    env = {**os.environ, "WEBHOOK_QUEUE_URL": url, "WEBHOOK_RETRY_SCHEDULE": "5,300,3600"}
    settings = Settings.from_mapping(env)
    return World(settings, JobStore(JOBS_TABLE), sqs, Queue(url, sqs), Clock())


def start_outcome() -> WebhookOutcome:
    return WebhookOutcome(id=webhook_message_id(JOB, "job.succeeded"), created_at=utc_now())


def started(world: World) -> JobRecord:
    job = finished_job(world.store)
    start_delivery(job, world.settings, world.store, world.queue)
    return job


# ------------------------------------------------------------------ the first attempt


def test_first_attempt_is_queued_once_and_the_job_says_pending(world: World) -> None:
    job = finished_job(world.store)
    outcome = start_delivery(job, world.settings, world.store, world.queue)
    assert outcome is not None and outcome.state == "pending" and outcome.attempts == 0
    assert outcome.id == webhook_message_id(JOB, "job.succeeded") and outcome.max_attempts is None
    assert world.sqs.last() == ({"job_id": JOB, "attempt": 1, "not_before": 0.0}, 0)
    assert world.webhook()["queued_attempt"] == 1
    # a step re-run queues nothing more, before or after the first attempt
    start_delivery(job, world.settings, world.store, world.queue)
    assert len(world.sqs.sent) == 1 and world.webhook()["created_at"] == outcome.created_at
    world.attempt(Receiver([HttpResult(500)]))
    start_delivery(job, world.settings, world.store, world.queue)
    assert len(world.sqs.sent) == 2 and world.webhook()["attempts"] == 1


def test_a_rerun_after_a_crash_before_the_first_send_queues_it(world: World) -> None:
    job = finished_job(world.store)
    world.store.start_webhook(job.job_id, start_outcome())  # stored, then the step died
    start_delivery(job, world.settings, world.store, world.queue)
    assert world.sqs.last() == ({"job_id": JOB, "attempt": 1, "not_before": 0.0}, 0)


def test_the_body_is_the_event_detail_under_type_and_timestamp(world: World) -> None:
    job = finished_job(world.store)
    assert json.loads(webhook_body(job)) == {
        "type": "job.succeeded",
        "timestamp": "2026-11-27T05:15:00.000Z",
        "data": {
            "job_id": JOB,
            "status": "SUCCEEDED",
            "counts": {"documents": 2, "chunks": 2, "embedded": 2, "failed": 0},
            "manifest_uri": job.manifest_uri,
        },
    }


# ------------------------------------------------------------------ the schedule


def test_retried_on_the_schedule_honouring_retry_after_until_delivered(world: World) -> None:
    job = started(world)
    receiver = Receiver([HttpResult(503), HttpResult(429, None, 600.0), HttpResult(204)])

    # attempt 1: 503 -> the schedule's 5 s (+ jitter), queued with DelaySeconds
    assert world.attempt(receiver) == "retrying"
    message, delay = world.sqs.last()
    assert message == {"job_id": JOB, "attempt": 2, "not_before": T0 + 5.25} and delay == 6
    w = world.webhook()
    assert (w["state"], w["attempts"], w["last_status"], w["last_error"]) == (
        "pending",
        1,
        503,
        "HTTP 503",
    )
    assert epoch(w["next_attempt_at"]) == T0 + 5.25

    # attempt 2: 429 with Retry-After 600, longer than the schedule's 300 s (+ jitter)
    world.clock.now = T0 + 6
    assert world.attempt(receiver) == "retrying"
    message, delay = world.sqs.last()
    assert message["attempt"] == 3 and message["not_before"] == T0 + 606 and delay == 600

    # attempt 3: 204 -> delivered, nothing more queued
    world.clock.now = T0 + 606
    sent = len(world.sqs.sent)
    assert world.attempt(receiver) == "delivered"
    assert len(world.sqs.sent) == sent
    w = world.webhook()
    assert (w["state"], w["attempts"], w["last_status"], w["last_error"]) == (
        "delivered",
        3,
        204,
        None,
    )
    assert w["next_attempt_at"] is None
    assert epoch(w["first_attempt_at"]) == T0 and epoch(w["last_attempt_at"]) == T0 + 606
    # every attempt carried the same webhook-id and the same body, to the job's URL and secret
    assert {c["msg_id"] for c in receiver.calls} == {webhook_message_id(JOB, "job.succeeded")}
    assert {c["body"] for c in receiver.calls} == {webhook_body(job)}
    assert {(c["url"], c["secret"], c["timeout"]) for c in receiver.calls} == {(URL, SECRET, 15.0)}


def test_a_wait_longer_than_900_s_is_queued_again_in_hops(world: World) -> None:
    started(world)
    receiver = Receiver([HttpResult(None, "ReadTimeoutError: timed out")] * 3 + [HttpResult(200)])
    for n in range(2):
        world.attempt(receiver)
        world.clock.now = world.sqs.last()[0]["not_before"]
    assert world.attempt(receiver) == "retrying"  # attempt 3 fails: next is 3600 s (+ jitter) away
    due = world.sqs.last()[0]["not_before"]
    assert world.sqs.last()[1] == 900
    hops = 0
    while world.clock.now + 900 < due:
        world.clock.now += 900  # the message arrives after its DelaySeconds, still early
        assert world.attempt(receiver) == "waiting"
        message, delay = world.sqs.last()
        assert message["attempt"] == 4 and message["not_before"] == due and 0 < delay <= 900
        hops += 1
    assert hops == 4  # 3600 s + 5 % jitter = 3780 s: four early arrivals, then due
    assert len(receiver.calls) == 3  # nothing was sent while waiting
    world.clock.now = due
    assert world.attempt(receiver) == "delivered"
    assert world.webhook()["last_error"] is None and len(receiver.calls) == 4


def test_410_gone_stops_delivery(world: World) -> None:
    started(world)
    assert world.attempt(Receiver([HttpResult(410)])) == "stopped"
    w = world.webhook()
    assert (w["state"], w["attempts"], w["last_status"]) == ("stopped", 1, 410)
    assert len(world.sqs.sent) == 1  # only the first attempt's message


@pytest.mark.parametrize("status", [301, 400, 401, 404, 422, 500, 502, 504])
def test_other_answers_are_retried(world: World, status: int) -> None:
    started(world)
    assert world.attempt(Receiver([HttpResult(status)])) == "retrying"
    assert world.webhook()["last_error"] == f"HTTP {status}"


def test_the_last_attempt_failing_fails_the_webhook(world: World) -> None:
    started(world)
    receiver = Receiver([HttpResult(500), HttpResult(None, "refused"), HttpResult(503)])
    results = []
    for _ in range(4):
        results.append(world.attempt(receiver))
        world.clock.now = world.sqs.last()[0]["not_before"]
    assert results == ["retrying", "retrying", "retrying", "failed"]
    w = world.webhook()
    assert (w["state"], w["attempts"], w["last_status"], w["last_error"]) == (
        "failed",
        4,
        503,
        "HTTP 503",
    )
    assert w["next_attempt_at"] is None and len(world.sqs.sent) == 4
    assert w["max_attempts"] == 4  # the webhook function's schedule: 3 delays


# ------------------------------------------------------------------ duplicates and races


def test_a_duplicate_of_a_recorded_attempt_sends_and_queues_nothing(world: World) -> None:
    started(world)
    first = world.sqs.last()[0]
    receiver = Receiver([HttpResult(500)])
    world.attempt(receiver, first)
    sent = len(world.sqs.sent)
    assert world.attempt(receiver, first) == "skipped"  # SQS delivers a message twice
    assert len(receiver.calls) == 1 and len(world.sqs.sent) == sent
    assert world.webhook()["attempts"] == 1


def test_a_crash_between_recording_and_queueing_loses_no_attempt(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    started(world)
    first = world.sqs.last()[0]
    receiver = Receiver([HttpResult(500)])

    def down(*a: Any, **k: Any) -> Any:
        raise ConnectionError("SQS unreachable")

    with monkeypatch.context() as m:
        m.setattr(world.sqs, "send_message", down)
        with pytest.raises(ConnectionError):  # recorded, the follow-up not queued
            world.attempt(receiver, first)
    assert world.webhook()["attempts"] == 1 and world.webhook()["queued_attempt"] == 1
    # the message comes back (the batch item failed): it queues the follow-up, sends nothing
    assert world.attempt(receiver, first) == "skipped"
    message, delay = world.sqs.last()
    assert message["attempt"] == 2 and delay == 6 and len(receiver.calls) == 1
    assert world.webhook()["queued_attempt"] == 2


def test_a_stale_message_after_delivery_is_dropped(world: World) -> None:
    started(world)
    first = world.sqs.last()[0]
    world.attempt(Receiver([HttpResult(204)]), first)
    sent = len(world.sqs.sent)
    receiver = Receiver([HttpResult(204)])
    assert world.attempt(receiver, first) == "skipped"
    assert world.attempt(receiver, {**first, "attempt": 2}) == "skipped"
    assert receiver.calls == [] and len(world.sqs.sent) == sent


def test_concurrent_copies_of_an_attempt_record_it_once_and_lose_no_follow_up(
    world: World,
) -> None:
    """At-least-once, never lost, never double-recorded: racing copies of an attempt each record
    nothing but the first; a copy that read the record between the winner's write and its
    `queued_attempt` note queues the next attempt too (a rare duplicate with the same
    webhook-id), and racing copies of that next attempt again record it once."""
    store = world.store
    for _ in range(8):
        store.client.delete_item(TableName=JOBS_TABLE, Key={"job_id": {"S": JOB}})
        started(world)
        copies = [world.sqs.last()[0]] * 6
        for attempt in (1, 2):
            before = len(world.sqs.sent)
            receiver = Receiver([HttpResult(503)])
            results = race([lambda m=m: world.attempt(receiver, m) for m in copies])
            assert sorted(results) == ["retrying"] + ["skipped"] * (len(copies) - 1), results
            w = world.webhook()
            assert w["attempts"] == attempt and w["queued_attempt"] == attempt + 1
            follow_ups = [json.loads(c["MessageBody"]) for c in world.sqs.sent[before:]]
            assert 1 <= len(follow_ups) <= len(copies)
            assert {m["attempt"] for m in follow_ups} == {attempt + 1}
            world.clock.now = follow_ups[0]["not_before"]
            copies = follow_ups
        # once settled, a late copy of a recorded attempt sends and queues nothing
        sent = len(world.sqs.sent)
        late = Receiver([HttpResult(204)])
        assert world.attempt(late, {"job_id": JOB, "attempt": 2, "not_before": 0}) == "skipped"
        assert late.calls == [] and len(world.sqs.sent) == sent
        world.clock.now = T0


def test_a_malformed_message_raises_so_it_comes_back(world: World) -> None:
    for body in ("{", '{"job_id": "x"}', '{"job_id": "x", "attempt": 0}'):
        with pytest.raises(ValidationError):
            attempt_delivery(body, world.settings, world.store, world.queue, send=Receiver([]))


def test_a_job_without_a_webhook_is_skipped(world: World) -> None:
    message = {"job_id": JOB, "attempt": 1, "not_before": 0}
    receiver = Receiver([HttpResult(204)])
    assert world.attempt(receiver, message) == "skipped"  # no such job (e.g. expired)
    finished_job(world.store)  # a job, but its webhook was never started
    assert world.attempt(receiver, message) == "skipped"
    assert receiver.calls == []


# ------------------------------------------------------------------ the queue (moto honours delays)


def test_queue_delays_are_honoured_rounded_up_and_capped(cloud: None) -> None:
    client = boto3.client("sqs")
    url = client.create_queue(QueueName="delays")["QueueUrl"]
    queue = Queue(url, client)
    assert queue.send({"n": 1}, 4000) == 900
    assert queue.send({"n": 2}, 0.2) == 1
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "2"
    assert client.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None
    assert queue.send({"n": 3}, -5) == 0
    (got,) = client.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
    assert json.loads(got["Body"]) == {"n": 3}


def test_a_queue_without_a_url_says_so() -> None:
    with pytest.raises(RuntimeError, match="WEBHOOK_QUEUE_URL"):
        Queue("").send({})


# ------------------------------------------------------------------ settings and template


def test_schedule_setting_from_the_environment() -> None:
    base = dict(os.environ)
    assert Settings.from_mapping(base).webhooks.max_attempts == 10
    s = Settings.from_mapping({**base, "WEBHOOK_RETRY_SCHEDULE": "1, 2,3"}).webhooks
    assert s.webhook_retry_schedule == (1, 2, 3) and s.max_attempts == 4
    for bad in ("1,-2", "1,x", "9999999"):
        with pytest.raises(ValidationError):
            Settings.from_mapping({**base, "WEBHOOK_RETRY_SCHEDULE": bad})


def test_the_template_wires_the_webhook_function_queue_dlq_and_alarm() -> None:
    with open(os.path.join(ROOT, "template.yaml")) as f:
        template = yaml_parse(f.read())
    res = template["Resources"]
    fn = res["WebhookFunction"]["Properties"]
    (source,) = fn["Events"].values()
    assert source["Type"] == "SQS"
    assert source["Properties"]["Queue"] == {"Fn::GetAtt": ["WebhookQueue", "Arn"]}
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    env = fn["Environment"]["Variables"]
    assert env["WEBHOOK_RETRY_SCHEDULE"] == {"Ref": "WebhookRetrySchedule"}
    assert env["ALLOW_PRIVATE_WEBHOOKS"] == "false"
    queue = res["WebhookQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]
    }
    assert queue["VisibilityTimeout"] >= 6 * fn["Timeout"]
    alarm = res["WebhookDeadLetterQueueAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {
        "Fn::GetAtt": ["WebhookDeadLetterQueue", "QueueName"]
    }
    # the functions that finish jobs may queue the first attempt
    for name in ("DeliverFunction", "FailFunction", "WatchdogFunction"):
        props = res[name]["Properties"]
        assert props["Environment"]["Variables"]["WEBHOOK_QUEUE_URL"] == {"Ref": "WebhookQueue"}
        assert {
            "SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["WebhookQueue", "QueueName"]}}
        } in props["Policies"]
    default = template["Parameters"]["WebhookRetrySchedule"]["Default"]
    schedule = Settings.from_mapping({**os.environ, "WEBHOOK_RETRY_SCHEDULE": default})
    assert schedule.webhooks.webhook_retry_schedule == (
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        50400,
        72000,
        86400,
    )


# ------------------------------------------------------------------ the function, end to end


@pytest.fixture
def library_receiver() -> Iterator[tuple[str, list[Any]]]:
    """A receiver on 127.0.0.1 that verifies each request with `standardwebhooks`."""
    verified: list[Any] = []
    lock = threading.Lock()

    def handle(request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers["content-length"]))
        payload = Webhook(SECRET).verify(body, dict(request.headers.items()))
        with lock:
            verified.append((request.headers["webhook-id"], payload))
        request.send_response(204)
        request.send_header("content-length", "0")
        request.end_headers()

    server = BackgroundHttpServer(handle, name="library-receiver").start()
    yield f"{server.url}/hooks/tandem", verified
    server.close()


def test_the_webhook_function_delivers_to_a_standardwebhooks_receiver(
    world: World,
    library_receiver: tuple[str, list[Any]],
    load_handler: Any,
    lambda_context: Any,
    event: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, verified = library_receiver
    monkeypatch.setenv("ALLOW_PRIVATE_WEBHOOKS", "true")  # as in the local cloud: http, loopback
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", world.queue.url)
    get_settings.cache_clear()
    job = finished_job(world.store, url=url)
    start_delivery(job, get_settings(), world.store, world.queue)
    handler = load_handler("webhook")
    # a batch holding the first attempt's message and a poison message
    out = handler.lambda_handler(event("webhook", "sqs_batch_with_poison"), lambda_context)
    assert out == {
        "batchItemFailures": [{"itemIdentifier": "7a3e5b1c-0001-4000-8000-000000000002"}]
    }
    assert verified == [(webhook_message_id(JOB, "job.succeeded"), json.loads(webhook_body(job)))]
    w = world.webhook()
    assert (w["state"], w["attempts"], w["last_status"]) == ("delivered", 1, 204)
