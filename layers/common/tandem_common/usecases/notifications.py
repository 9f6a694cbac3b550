"""Telling the world a job finished: the EventBridge event, then the webhook's first attempt queued.

Runs once per job (`notified_at` on the record). The event is published first and a failure
raises, so the step's retry publishes it again (at-least-once). The webhook is then only queued
(`webhook_delivery.start_delivery`): its attempts and retries run in the webhook function and
never fail or delay the job.
"""

from __future__ import annotations

from typing import Any

from tandem_common.adapters.events import job_event_detail, publish_job_event
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.queues import Queue
from tandem_common.models import JobRecord, WebhookOutcome
from tandem_common.settings import Settings
from tandem_common.usecases.webhook_delivery import start_delivery


def notify_job_finished(
    job: JobRecord,
    settings: Settings,
    store: JobStore,
    events_client: Any | None = None,
    queue: Queue | None = None,
) -> WebhookOutcome | None:
    """Publish the job's terminal event and queue its webhook unless already done. Returns the
    webhook's outcome (None when there is no webhook or nothing to do)."""
    if job.notified_at is not None:
        return None
    detail = job_event_detail(job.job_id, job.status, job.counts, job.manifest_uri)
    publish_job_event(settings.resources.event_bus_name, detail, events_client)
    outcome = None
    if job.webhook_url and job.webhook_secret:
        outcome = start_delivery(job, settings, store, queue)
    store.record_notification(job.job_id, None)
    return outcome
