"""One LocalCloud for the whole directory (the endpoint loads once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def cloud():
    from tandem.local.cloud import LocalCloud

    template = os.environ.get("TANDEM_TEST_TEMPLATE", str(ROOT / "template.yaml"))
    with LocalCloud(template=template) as c:
        yield c


@pytest.fixture
def drained(cloud):
    """Nothing running and no endpoint request in flight, faults cleared, before and after."""
    cloud.drain()
    cloud.set_faults(None)
    yield cloud
    cloud.drain()
    cloud.set_faults(None)
