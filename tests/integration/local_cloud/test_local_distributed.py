"""The Distributed Map through the local cloud: ItemReader from S3, children, shards, deliver.

Its own local cloud, with the endpoint's `fake-fast` backend (deterministic pseudo-vectors, not a
model: orchestration at scale is what is tested here) and `InlineMapMaxBatches=2`, so every job
of three batches or more takes the `EmbedBatchesDistributed` state.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from tandem_common.contracts import execution_arn, s3_job_id, s3_revision
from tandem_endpoint.backends.stand_ins import FakeFastBackend

pytestmark = pytest.mark.integration

BATCH = 64


@pytest.fixture(scope="module")
def fast_cloud() -> Iterator[Any]:
    from tandem.local.cloud import LocalCloud

    # its own stack name: local clouds in one process share moto's state
    with LocalCloud(
        stack_name="tandemfast",
        endpoint_args=["--backend", "fake-fast"],
        parameter_overrides={
            "BatchSize": str(BATCH),
            "InlineMapMaxBatches": "2",
            "MapMaxConcurrency": "8",
        },
    ) as cloud:
        yield cloud


@pytest.fixture
def fast(fast_cloud: Any) -> Iterator[Any]:
    fast_cloud.jobs.drain()
    fast_cloud.faults.endpoint.set(None)
    yield fast_cloud
    fast_cloud.jobs.drain()
    fast_cloud.faults.endpoint.set(None)


def _upload(cloud: Any, docs: list[dict[str, str]]) -> str:
    key = f"inbox/distributed/{uuid.uuid4().hex}.jsonl"
    body = "".join(json.dumps(d) + "\n" for d in docs).encode()
    put = cloud.client("s3").put_object(Bucket=cloud.bucket, Key=key, Body=body)
    return s3_job_id(cloud.bucket, key, s3_revision(put.get("VersionId"), put["ETag"]))


def _parent_events(cloud: Any, job_id: str) -> list[str]:
    sfn = cloud.client("stepfunctions")
    arn = execution_arn(cloud.state_machine_arn, job_id)
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [e["type"] for e in events]


def test_a_20k_chunk_job_runs_through_the_distributed_map(fast: Any) -> None:
    docs = [
        {"id": f"d{i}", "text": f"document {i} of the big corpus, line {i}"} for i in range(20_000)
    ]
    job_id = _upload(fast, docs)
    job = fast.jobs.wait(job_id, timeout=900)
    assert job["status"] == "SUCCEEDED", job
    assert job["counts"] == {"documents": 20_000, "chunks": 20_000, "embedded": 20_000, "failed": 0}
    # the parent ran the Distributed Map (a Map Run), its history stays small
    events = _parent_events(fast, job_id)
    assert "MapRunStarted" in events and "MapRunSucceeded" in events and len(events) < 40
    # every chunk once, across ceil(20000 / 64) shards, each with the fake's vector of its text
    shards = fast.jobs.shards(job_id)
    assert len(shards) == -(-20_000 // BATCH) == 313 and sum(s["rows"] for s in shards) == 20_000
    rows = fast.jobs.result_rows(job_id)
    assert sorted(r["chunk_id"] for r in rows) == sorted(f"d{i}#0" for i in range(20_000))
    texts = {d["id"]: d["text"] for d in docs}
    sample = rows[::997]
    expected = FakeFastBackend(dims=384).embed_texts([texts[r["document_id"]] for r in sample])
    np.testing.assert_allclose(np.array([r["embedding"] for r in sample]), expected, atol=1e-6)
    total, dims, _ = fast.jobs.result_matrix(job_id)
    assert (total, dims) == (20_000, 384)
    # the progress counter reached the batch total
    assert job["progress"]["batches"] == 313 and job["progress"]["batches_done"] >= 313


def _small_job(cloud: Any, tag: str, n: int = 200) -> tuple[str, set[str]]:
    docs = [{"id": f"{tag}-{i}", "text": f"{tag} document {i}: tides and moons"} for i in range(n)]
    return _upload(cloud, docs), {d["id"] for d in docs}


def test_distributed_children_retry_a_5xx_like_the_inline_ones(fast: Any) -> None:
    # two container 5xx answers: the child's IsServerError/BackOff loop retries them
    fast.faults.endpoint.set({"error_5xx": 2})
    job_id, docs = _small_job(fast, "retry5xx")
    job = fast.jobs.wait(job_id, timeout=300)
    assert job["status"] == "SUCCEEDED", job
    assert "MapRunStarted" in _parent_events(fast, job_id)
    assert {r["document_id"] for r in fast.jobs.result_rows(job_id)} == docs


def test_a_bad_batch_fails_only_its_documents_in_a_distributed_map(fast: Any) -> None:
    # one malformed output (the wrong row count): that batch's documents fail with the reason,
    # the other batches' documents are delivered, and nothing is lost
    fast.faults.endpoint.set({"malformed": 1})
    job_id, docs = _small_job(fast, "badbatch")
    job = fast.jobs.wait(job_id, timeout=300)
    assert job["status"] == "PARTIAL", job
    failures = fast.jobs.result_file(job_id, "result/failures.jsonl")
    failed = {f["id"] for f in failures}
    assert len(failed) == BATCH and all(
        f["reason"].startswith("batch output has") for f in failures
    )
    embedded = {r["document_id"] for r in fast.jobs.result_rows(job_id)}
    assert embedded | failed == docs and not embedded & failed
    assert job["counts"]["failed"] == BATCH and job["counts"]["embedded"] == len(docs) - BATCH
