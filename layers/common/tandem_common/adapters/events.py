"""EventBridge `Tandem Job Succeeded|Partial|Failed` events (Source `tandem`)."""

from __future__ import annotations

import json
from typing import Any

from tandem_common.adapters import aws
from tandem_common.models import Counts, JobStatus

SOURCE = "tandem"
DETAIL_TYPES: dict[str, str] = {
    "SUCCEEDED": "Tandem Job Succeeded",
    "PARTIAL": "Tandem Job Partial",
    "FAILED": "Tandem Job Failed",
}


def job_event_detail(
    job_id: str, status: JobStatus, counts: Counts, manifest_uri: str | None
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": status,
        "counts": counts.model_dump(),
        "manifest_uri": manifest_uri,
    }


def publish_job_event(bus_name: str, detail: dict[str, Any], client: Any | None = None) -> None:
    """Put one job event; raises if EventBridge reports the entry failed."""
    events = client or aws.eventbridge()
    out = events.put_events(
        Entries=[
            {
                "Source": SOURCE,
                "DetailType": DETAIL_TYPES[detail["status"]],
                "Detail": json.dumps(detail),
                "EventBusName": bus_name,
                "Resources": [],
            }
        ]
    )
    if out.get("FailedEntryCount", 0):
        raise RuntimeError(f"EventBridge rejected the event: {out.get('Entries')}")
