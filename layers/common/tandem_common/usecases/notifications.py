"""Telling the world a job finished: the EventBridge event, then the webhook's first attempt queued.

Once per job, even when two runs of a step (a retry, or Express running an execution twice)
finish the same job at the same time: the run that claims the notification on the job record
(`JobStore.claim_notification`, a conditional write with a lease) publishes it and marks it done
(`notified_at`); a run that finds it claimed waits for `notified_at`, and takes over only if the
claim expires (its holder died before finishing). The event is published first and a failure
raises, so the step's retry publishes it again. The webhook is then only queued
(`webhook_delivery.start_delivery`, itself guarded by conditional writes): its attempts and
retries run in the webhook function and never fail or delay the job.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from tandem_common.adapters.events import job_event_detail, publish_job_event
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.queues import Queue
from tandem_common.models import JobRecord, WebhookOutcome
from tandem_common.observability import (
    CHUNKS_EMBEDDED,
    DOCUMENTS_FAILED,
    JOB_END_METRICS,
    emit,
    logger,
)
from tandem_common.settings import Settings
from tandem_common.usecases.webhook_delivery import start_delivery

NOTIFY_LEASE_S = 30.0  # publishing and queueing take well under a second; a claim lives this long
POLL_S = 0.2


class NotificationPending(RuntimeError):
    """Another run holds the job's notification for longer than its lease (it is stuck)."""


def record_job_end(
    status: str, embedded: int = 0, failed_by_class: Mapping[str, int] | None = None
) -> None:
    """The metrics of a job's end. Called only by the run whose terminal write changed the
    record, so each job counts once, however often its steps run."""
    emit(JOB_END_METRICS[status])
    if embedded:
        emit(CHUNKS_EMBEDDED, embedded)
    for reason_class, count in sorted((failed_by_class or {}).items()):
        if count:
            emit(DOCUMENTS_FAILED, count, Reason=reason_class)


def notify_job_finished(
    job: JobRecord,
    settings: Settings,
    store: JobStore,
    events_client: Any | None = None,
    queue: Queue | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> WebhookOutcome | None:
    """Publish the job's terminal event and queue its webhook unless already done. Returns the
    webhook's outcome (None when there is no webhook or nothing to do)."""
    if job.notified_at is not None:
        return None
    owner = uuid.uuid4().hex
    give_up = clock() + NOTIFY_LEASE_S + 5
    while not store.claim_notification(job.job_id, owner, clock(), NOTIFY_LEASE_S):
        if store.require(job.job_id).notified_at is not None:
            return None  # another run told the world
        if clock() > give_up:
            raise NotificationPending(f"job {job.job_id}: its notification is held by another run")
        sleep(POLL_S)
    detail = job_event_detail(job.job_id, job.status, job.counts, job.manifest_uri)
    publish_job_event(settings.resources.event_bus_name, detail, events_client)
    outcome = None
    if job.webhook_url and job.webhook_secret:
        outcome = start_delivery(job, settings, store, queue)
    store.record_notification(job.job_id, None)
    logger.info("job notified", extra={"status": job.status, "webhook": outcome is not None})
    return outcome
