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
    # The endpoint keeps its production deadline (55 s): on a busy machine an honest batch on
    # the CPU model can take long, and must not be cut. The slow-endpoint test gives only its
    # injected slow request a short deadline (DEADLINE_S, the fault plan's `deadline_s`).
    # Its own stack name: local clouds in one process share moto's state, and the events test
    # runs one named `tandem` (the names its event files use) beside this one.
    with LocalCloud(
        template=template,
        stack_name=STACK,
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
