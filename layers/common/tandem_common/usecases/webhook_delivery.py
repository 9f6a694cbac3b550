"""Durable webhook delivery: a finished job's event, signed per Standard Webhooks, retried from a
queue on a schedule (docs/RELIABILITY.md, "Webhooks").

`start_delivery` (deliver, fail, watchdog; after the EventBridge event) stores the job's
`webhook` outcome as pending, once, and queues attempt 1. The webhook function runs
`attempt_delivery` for each queue message `{"job_id","attempt","not_before"}`:

- a 2xx is `delivered`; a 410 `stopped` (the receiver wants no more); anything else (a timeout,
  no connection, a refused address, a 3xx, a 429, any 4xx or 5xx) is retried after the next
  delay of the schedule (+ up to 10 % jitter), or after `Retry-After` when that is longer (at
  most a day), until the last attempt fails: `failed`;
- the next attempt is queued with `DelaySeconds` (at most 900 s); a message that arrives before
  its `not_before` is queued again for the rest of the wait, so any delay works;
- every attempt is recorded with a compare-and-set on the job record (`attempts` one higher,
  still pending): concurrent copies of an attempt's message may each send it (the receiver
  dedupes on `webhook-id`), but only one records it and queues the next one, then notes that
  in `queued_attempt`. A copy that finds its attempt recorded but the next one not noted as
  queued queues it, so a crash between recording and queueing loses nothing.

Nothing sleeps in the Lambda. The body is built from the job record, the same on every attempt:
`{"type": "job.succeeded|job.partial|job.failed", "timestamp": <finished_at>, "data": <the
EventBridge detail>}`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from tandem_common.adapters.events import job_event_detail
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.queues import Queue
from tandem_common.adapters.webhooks import HttpResult, send_signed
from tandem_common.contracts import webhook_event_type, webhook_message_id
from tandem_common.models import JobRecord, Meta, Model, WebhookOutcome, WebhookState
from tandem_common.observability import WEBHOOK_ATTEMPTS, emit, job_context, logger
from tandem_common.settings import Settings

MAX_RETRY_AFTER_S = 86400  # a receiver's Retry-After is honoured up to a day
JITTER = 0.1  # up to +10 % on each scheduled delay

Sender = Callable[..., HttpResult]
AttemptResult = Literal["delivered", "failed", "stopped", "retrying", "waiting", "skipped"]


class WebhookMessage(Model):
    """A webhook-queue message: attempt `attempt` of the job's webhook, not before `not_before`
    (epoch s)."""

    job_id: Annotated[str, Meta(min_length=1, max_length=64)]
    attempt: Annotated[int, Meta(ge=1)]
    not_before: float = 0


def iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def epoch(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()


def webhook_body(job: JobRecord) -> bytes:
    """The webhook's JSON body (minified; the same bytes on every attempt)."""
    payload = {
        "type": webhook_event_type(job.status),
        "timestamp": job.finished_at or job.updated_at,
        "data": job_event_detail(job.job_id, job.status, job.counts, job.manifest_uri),
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def webhook_queue(settings: Settings) -> Queue:
    return Queue(settings.webhooks.webhook_queue_url)


def start_delivery(
    job: JobRecord, settings: Settings, store: JobStore, queue: Queue | None = None
) -> WebhookOutcome | None:
    """Mark the job's webhook pending (once) and queue its first attempt. A repeat (a step
    re-run) queues it again only if the first run did not get to note it queued."""
    outcome = WebhookOutcome(
        id=webhook_message_id(job.job_id, webhook_event_type(job.status)),
        created_at=iso(time.time()),
    )
    stored = store.start_webhook(job.job_id, outcome)
    if stored is not None and stored.state == "pending" and stored.queued_attempt == 0:
        first = WebhookMessage(job_id=job.job_id, attempt=1)
        (queue or webhook_queue(settings)).send(first.model_dump())
        store.mark_webhook_queued(job.job_id, 1)
    return stored


def next_delay(
    settings: Settings, attempt: int, result: HttpResult, jitter: Callable[[], float]
) -> float:
    """Seconds until the attempt after `attempt`: the schedule's delay with jitter, or the
    receiver's Retry-After when that is longer."""
    schedule = settings.webhooks.webhook_retry_schedule
    delay = schedule[min(attempt, len(schedule)) - 1] * (1 + JITTER * jitter()) if schedule else 0
    if result.retry_after_s is not None:
        delay = max(delay, min(result.retry_after_s, MAX_RETRY_AFTER_S))
    return delay


def outcome_after(
    current: WebhookOutcome,
    result: HttpResult,
    max_attempts: int,
    started: float,
    answered: float,
    delay: float,
) -> WebhookOutcome:
    """The outcome once attempt `current.attempts + 1` (of `max_attempts`), begun at `started`,
    got `result` at `answered`; a retry is due `delay` seconds after the answer."""
    attempts = current.attempts + 1
    status = result.status
    state: WebhookState
    if status is not None and 200 <= status < 300:
        state = "delivered"
    elif status == 410:
        state = "stopped"
    elif attempts >= max_attempts:
        state = "failed"
    else:
        state = "pending"
    error = result.error or (None if state == "delivered" else f"HTTP {status}")
    return current.model_copy(
        update={
            "state": state,
            "attempts": attempts,
            "max_attempts": max_attempts,
            "last_status": status,
            "last_error": error,
            "first_attempt_at": current.first_attempt_at or iso(started),
            "last_attempt_at": iso(started),
            "next_attempt_at": iso(answered + delay) if state == "pending" else None,
        }
    )


def attempt_delivery(
    body: str,
    settings: Settings,
    store: JobStore,
    queue: Queue,
    send: Sender = send_signed,
    clock: Callable[[], float] = time.time,
    jitter: Callable[[], float] = random.random,
) -> AttemptResult:
    """Run the attempt a queue message asks for (see the module doc). Raises on a malformed
    message or when the attempt cannot be recorded or the next one queued: the message comes
    back, and after the queue's maxReceiveCount it is in the webhook DLQ."""
    message = WebhookMessage.model_validate_json(body)
    with job_context(message.job_id):
        return _attempt(message, settings, store, queue, send, clock, jitter)


def _attempt(
    message: WebhookMessage,
    settings: Settings,
    store: JobStore,
    queue: Queue,
    send: Sender,
    clock: Callable[[], float],
    jitter: Callable[[], float],
) -> AttemptResult:
    log = {"attempt": message.attempt}
    job = store.get(message.job_id)
    current = job.webhook if job is not None else None
    if job is None or current is None or not job.webhook_url or not job.webhook_secret:
        logger.warning("webhook message for a job without a webhook", extra=log)
        return "skipped"
    if current.state != "pending" or current.attempts != message.attempt - 1:
        if (
            current.state == "pending"
            and current.attempts == message.attempt
            and current.queued_attempt == message.attempt
        ):  # recorded, but the next attempt was not noted as queued (a crash in between?)
            _queue_next(store, queue, message, current.next_attempt_at, clock())
        logger.info("webhook attempt already made", extra={**log, "state": current.state})
        return "skipped"
    now = clock()
    if now < message.not_before:
        queue.send(message.model_dump(), message.not_before - now)
        return "waiting"
    result = send(
        job.webhook_url,
        job.webhook_secret,
        current.id,
        webhook_body(job),
        allow_private=settings.webhooks.allow_private_webhooks,
        timeout=settings.webhooks.webhook_timeout_s,
    )
    answered = clock()
    delay = next_delay(settings, message.attempt, result, jitter)
    outcome = outcome_after(current, result, settings.webhooks.max_attempts, now, answered, delay)
    if not store.record_webhook_attempt(message.job_id, outcome):
        logger.info("webhook attempt recorded by another consumer", extra=log)
        return "skipped"
    emit(WEBHOOK_ATTEMPTS, Outcome="retrying" if outcome.state == "pending" else outcome.state)
    logger.info(
        "webhook attempt",
        extra={**log, "state": outcome.state, "status": result.status, "error": result.error},
    )
    if outcome.state == "pending":
        _queue_next(store, queue, message, outcome.next_attempt_at, answered)
        return "retrying"
    if outcome.state == "failed":
        logger.warning("webhook not delivered after every attempt", extra=log)
        return "failed"
    return "delivered" if outcome.state == "delivered" else "stopped"


def _queue_next(
    store: JobStore, queue: Queue, done: WebhookMessage, next_attempt_at: str | None, now: float
) -> None:
    """Queue the attempt after `done`, invisible until `next_attempt_at`, and note it queued."""
    not_before = epoch(next_attempt_at) if next_attempt_at else now
    following = WebhookMessage(job_id=done.job_id, attempt=done.attempt + 1, not_before=not_before)
    queue.send(following.model_dump(), not_before - now)
    store.mark_webhook_queued(done.job_id, following.attempt)
