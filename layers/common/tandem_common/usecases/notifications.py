"""Telling the world a job finished: the EventBridge event, then the signed webhook.

Runs once per job (`notified_at` on the record); a webhook failure is logged and recorded on
the job but never fails it. An EventBridge failure raises so the step's retry re-delivers.
"""

from __future__ import annotations

from typing import Any

from tandem_common.adapters.events import job_event_detail, publish_job_event
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.webhooks import send_webhook
from tandem_common.models import JobRecord
from tandem_common.observability import logger
from tandem_common.settings import Settings


def notify_job_finished(
    job: JobRecord, settings: Settings, store: JobStore, events_client: Any | None = None
) -> dict[str, Any] | None:
    """Publish the job's terminal event and webhook unless already done. Returns the webhook
    delivery result (None when there was no webhook or nothing to do)."""
    if job.notified_at is not None:
        return None
    detail = job_event_detail(job.job_id, job.status, job.counts, job.manifest_uri)
    publish_job_event(settings.resources.event_bus_name, detail, events_client)
    result: dict[str, Any] | None = None
    if job.webhook_url and job.webhook_secret:
        delivery = send_webhook(
            job.webhook_url,
            job.webhook_secret,
            detail,
            allow_private=settings.webhooks.allow_private_webhooks,
        )
        result = delivery.as_dict()
        if not delivery.delivered:
            logger.warning("webhook not delivered", extra={"job_id": job.job_id, **result})
    store.record_notification(job.job_id, result)
    return result
