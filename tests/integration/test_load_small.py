"""bench/load.py at a reduced size, from the test suite: every job terminal, nothing lost.

The full-size run (1,000 jobs, 5,000 documents) is `make load`; its figures are in
docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_reduced_load_through_all_three_paths_loses_nothing(tmp_path: Path) -> None:
    summary_file = tmp_path / "load.json"
    command = [sys.executable, "bench/load.py", "--jobs", "30", "--docs-per-job", "5"]
    command += ["--no-write", "--json", str(summary_file), "--time-limit", "100"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    summary = json.loads(summary_file.read_text())
    assert summary["jobs"] == 30 and summary["documents"] == 150
    assert summary["paths"] == {"api": 10, "s3": 10, "sqs": 10}
    assert summary["documents_lost"] == 0
    assert summary["duplicates"] == 0
    assert summary["stuck_jobs"] == 0
    assert summary["submit_errors"] == 0
    assert summary["documents_embedded"] + summary["documents_failed_with_reason"] == 150
