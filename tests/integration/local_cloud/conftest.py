"""One LocalCloud for the whole directory (the endpoint loads once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEADLINE_S = 15
STACK = "tandemtest"
# Webhook retries 1 s apart (4 attempts) instead of the template's days-long schedule
WEBHOOK_RETRY_SCHEDULE = "1,1,1"


@pytest.fixture(scope="session")
def cloud():
    from tandem.local.cloud import LocalCloud

    template = os.environ.get("TANDEM_TEST_TEMPLATE", str(ROOT / "template.yaml"))
    # A short endpoint deadline (55 s in production, under the runtime's 60 s and the task's
    # 75 s) lets the slow-endpoint test see the deadline answer without waiting a minute.
    # Its own stack name: local clouds in one process share moto's state, and the events test
    # runs one named `tandem` (the names its event files use) beside this one.
    with LocalCloud(
        template=template,
        stack_name=STACK,
        endpoint_args=["--request-deadline-s", str(DEADLINE_S)],
        # Every job on the Standard workflow here (ExpressMaxBytes=0, the switch): these tests
        # read Standard executions' histories; test_local_express.py runs Express in its own
        parameter_overrides={
            "WebhookRetrySchedule": WEBHOOK_RETRY_SCHEDULE,
            "ExpressMaxBytes": "0",
        },
    ) as c:
        yield c


@pytest.fixture
def endpoint_deadline_s() -> int:
    return DEADLINE_S


@pytest.fixture
def drained(cloud):
    """Nothing running and no endpoint request in flight, faults cleared, before and after."""
    cloud.jobs.drain()
    cloud.faults.endpoint.set(None)
    yield cloud
    cloud.jobs.drain()
    cloud.faults.endpoint.set(None)
