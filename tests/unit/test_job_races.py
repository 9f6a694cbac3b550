"""DynamoDB conditional-write races on the jobs table (moto, schema from template.yaml).

Threads released together by a barrier race JobStore transitions; every race must end with
one job, one terminal status that is never overwritten, and counts that are not doubled.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from conftest import BUCKET, JOBS_TABLE, fake_endpoint_run, s3_keys
from tandem_common.adapters.jobs import JobStore, utc_now
from tandem_common.errors import InvalidTransition
from tandem_common.models import Counts, ErrorInfo, JobRecord, ResolvedOptions

RACERS = 8
ROUNDS = 15


@pytest.fixture(autouse=True)
def item_level_atomicity(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB evaluates a condition and applies its write atomically; moto, called from several
    threads, does not (two writers can both pass the same condition). The local cloud's fix
    (one lock around moto's item operations, `moto_compat.serialise_dynamodb_items`) models
    DynamoDB's guarantee, so these tests check Tandem's conditions, not moto's thread safety."""
    from tandem.local import moto_compat

    moto_compat.serialise_dynamodb_items(monkeypatch.setattr)


def race(fns: list[Callable[[], Any]]) -> list[Any]:
    """Run the callables in threads released at once; return their results or exceptions."""
    barrier = threading.Barrier(len(fns))
    out: list[Any] = [None] * len(fns)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fns[i]()
        except Exception as exc:  # noqa: BLE001 - the race's loser is part of the result
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def record(job_id: str, status: str = "QUEUED", source: str = "api") -> JobRecord:
    now = utc_now()
    return JobRecord.model_validate(
        {
            "job_id": job_id,
            "status": status,
            "source": source,
            "input_uri": f"s3://{BUCKET}/jobs/{job_id}/input/documents.jsonl",
            "options": ResolvedOptions(chunk_tokens=256, chunk_overlap=32, batch_size=64),
            "created_at": now,
            "updated_at": now,
            "expires_at": 2_000_000_000,
        }
    )


def count_items() -> int:
    return int(boto3.client("dynamodb").scan(TableName=JOBS_TABLE, Select="COUNT")["Count"])


def test_concurrent_creates_make_exactly_one_job(cloud: None) -> None:
    store = JobStore(JOBS_TABLE)
    for n in range(ROUNDS):
        job_id = f"race-create-{n}"
        # each racer brings its own record (different sources), as two entry paths would
        sources = [("api", "s3", "sqs")[i % 3] for i in range(RACERS)]
        results = race([functools.partial(store.create, record(job_id, source=s)) for s in sources])
        assert not [r for r in results if isinstance(r, Exception)], results
        created = [job for job, was_created in results if was_created]
        assert len(created) == 1, f"round {n}: {len(created)} creates won"
        # every loser got the winner's record back, not its own
        assert {job.source for job, _ in results} == {created[0].source}
    assert count_items() == ROUNDS


def test_finish_racing_mark_failed_ends_in_exactly_one_terminal_status(cloud: None) -> None:
    store = JobStore(JOBS_TABLE)
    counts = Counts(documents=3, chunks=5, embedded=5, failed=0)
    winners: dict[str, int] = {"SUCCEEDED": 0, "FAILED": 0}
    for n in range(ROUNDS):
        job_id = f"race-terminal-{n}"
        store.create(record(job_id))
        store.mark_running(job_id)
        results = race(
            [
                lambda: store.finish(job_id, "SUCCEEDED", counts, "s3://b/m.json", []),
                lambda: store.mark_failed(job_id, ErrorInfo(code="boom", message="fail step")),
            ]
        )
        for result in results:  # losing a race is InvalidTransition; anything else is a bug
            if isinstance(result, Exception) and not isinstance(result, InvalidTransition):
                raise result
        finished, failed = results
        final = store.require(job_id)
        assert final.status in ("SUCCEEDED", "FAILED")
        winners[final.status] += 1
        if final.status == "SUCCEEDED":
            # deliver won: the fail write was a no-op and did not touch the record
            assert finished[1] is True and failed[1] is False, results
            assert final.error is None and final.counts == counts
        else:
            # the fail step won: deliver's finish is refused, not applied over it
            assert isinstance(finished, InvalidTransition), results
            assert failed[1] is True and final.error and final.error.code == "boom"
        # a later repeat of either write never overwrites the terminal status
        assert store.mark_failed(job_id, ErrorInfo(code="late", message="late"))[1] is False
        if final.status == "SUCCEEDED":
            assert store.finish(job_id, "SUCCEEDED", counts, "s3://b/m.json", [])[1] is False
        else:
            with pytest.raises(InvalidTransition):
                store.finish(job_id, "SUCCEEDED", counts, "s3://b/m.json", [])
        assert store.require(job_id).status == final.status
    assert sum(winners.values()) == ROUNDS


def test_concurrent_mark_running_and_repeated_terminal_writes(cloud: None) -> None:
    store = JobStore(JOBS_TABLE)
    store.create(record("race-running"))
    results = race([lambda: store.mark_running("race-running") for _ in range(RACERS)])
    assert all(isinstance(r, JobRecord) and r.status == "RUNNING" for r in results), results
    counts = Counts(documents=1, chunks=1, embedded=1, failed=0)
    results = race(
        [
            lambda: store.finish("race-running", "SUCCEEDED", counts, "s3://b/m.json", [])
            for _ in range(RACERS)
        ]
    )
    assert sum(1 for _, changed in results if changed) == 1, results
    assert {job.status for job, _ in results} == {"SUCCEEDED"}


def _queued_job(job_id: str) -> None:
    from tandem_common.models import JobCreate, JobOptions, Source
    from tandem_common.settings import get_settings
    from tandem_common.usecases.intake import JobIntake

    docs = [{"id": d, "text": f"{d} is a document about tides"} for d in "abcde"]
    key = "inbox/race/docs.jsonl"
    boto3.client("s3").put_object(
        Bucket=BUCKET, Key=key, Body="\n".join(json.dumps(d) for d in docs).encode()
    )
    request = JobCreate(
        source=Source(s3_uri=f"s3://{BUCKET}/{key}"), options=JobOptions(batch_size=2)
    )
    JobIntake(get_settings()).submit(job_id, request, "s3")


def test_concurrent_deliver_reruns_write_the_same_result_without_double_counting(
    cloud: None, load_handler: Any, lambda_context: Any
) -> None:
    # Given a preprocessed job whose batches were embedded (3 batches, 5 documents)
    job_id = "5d0c3a1e-7b2f-4e6a-9c8d-0f1e2d3c4b5a"
    _queued_job(job_id)
    pre = load_handler("preprocess").lambda_handler({"job_id": job_id}, lambda_context)
    assert pre["batch_count"] == 3
    for ref in pre["batches"]:
        fake_endpoint_run(ref["inputs_uri"], ref["outputs_uri"])
    deliver = load_handler("deliver")
    event = {"job_id": job_id, "batch_results": [{"index": i, "ok": True} for i in range(3)]}
    # When deliver runs 4 times at once (Step Functions retries after crashes that lost replies)
    results = race([lambda: deliver.lambda_handler(event, lambda_context) for _ in range(4)])
    assert not [r for r in results if isinstance(r, Exception)], results
    # Then every run reports the same status and counts, and the record holds them once
    expected = {"documents": 5, "chunks": 5, "embedded": 5, "failed": 0}
    assert {json.dumps(r["counts"], sort_keys=True) for r in results} == {
        json.dumps(expected, sort_keys=True)
    }
    assert {r["status"] for r in results} == {"SUCCEEDED"}
    job = JobStore(JOBS_TABLE).require(job_id)
    assert job.status == "SUCCEEDED" and job.counts.model_dump() == expected
    # and a later re-run changes nothing, byte for byte
    s3 = boto3.client("s3")
    before = {
        k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()
        for k in s3_keys(f"jobs/{job_id}/result/")
    }
    rows = [
        json.loads(x)
        for k, data in before.items()
        if k.endswith(".jsonl") and "/result/shards/" in k
        for x in data.splitlines()
    ]
    assert len(rows) == 5 and len({r["chunk_id"] for r in rows}) == 5  # no duplicated vectors
    again = deliver.lambda_handler(event, lambda_context)
    after = {
        k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()
        for k in s3_keys(f"jobs/{job_id}/result/")
    }
    assert again == results[0] and before == after
    assert JobStore(JOBS_TABLE).require(job_id) == job
