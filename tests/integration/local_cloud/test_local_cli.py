"""The CLI's large-input path: POST /v1/uploads, a presigned PUT, then the job the upload makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tandem.client import TandemClient
from tandem.submission import INLINE_LIMIT, submit_files

pytestmark = pytest.mark.integration


def test_submit_sends_a_large_file_by_presigned_upload(drained, tmp_path: Path) -> None:
    cloud = drained
    big = tmp_path / "big.jsonl"
    text = "The harbour wakes at dawn and the ferries cross the bay. " * 20  # ~1.1 KB
    # Identical texts dedupe to one embedded chunk, so the CPU endpoint has little to do.
    big.write_text("\n".join(json.dumps({"id": f"doc-{i}", "text": text}) for i in range(1000)))
    assert big.stat().st_size > INLINE_LIMIT

    (job_id,) = submit_files(TandemClient(cloud.api_url), [big])

    job = cloud.jobs.wait(job_id)
    assert job["status"] == "SUCCEEDED", job
    assert job["source"] == "s3"  # it came through inbox/, not inline
    assert job["counts"]["documents"] == 1000
    assert job["counts"]["embedded"] == job["counts"]["chunks"]
    rows = cloud.jobs.result_rows(job_id)
    assert {r["document_id"] for r in rows} == {f"doc-{i}" for i in range(1000)}
