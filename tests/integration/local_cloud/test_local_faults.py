"""Fault injection in the local cloud beyond the endpoint's own faults (test_local_pipeline.py):
Lambda workers that crash or time out, S3 PutObject that fails transiently, the endpoint's
process killed mid-job and restarted, and the watchdog that fails a stuck job. Each test asserts the documented outcome: no document lost, no
duplicate job, no job left RUNNING."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from tandem_common.contracts import deterministic_job_id

pytestmark = pytest.mark.integration


def _post(url, body, headers=None):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())


@pytest.fixture
def faults(drained):
    """The drained cloud with every fault plan cleared before and after."""
    cloud = drained
    cloud.faults.lambdas.set(None)
    cloud.faults.s3.set(None)
    cloud.faults.lambdas.log.clear()
    yield cloud
    cloud.faults.lambdas.set(None)
    cloud.faults.s3.set(None)
    cloud.jobs.drain()


def _submit(cloud, tag, n=3):
    """Submit n documents with an Idempotency-Key; returns (job_id, document ids)."""
    key = f"{tag}-{uuid.uuid4()}"
    docs = [
        {"id": f"{tag}-{i}", "text": f"Document {i} on {tag}: tides and moons."} for i in range(n)
    ]
    status, body = _post(cloud.api_url + "/v1/jobs", {"documents": docs}, {"Idempotency-Key": key})
    assert status == 202 and body["job_id"] == deterministic_job_id("api", key)
    return body["job_id"], {d["id"] for d in docs}


def _result_rows(cloud, job_id):
    return cloud.jobs.result_rows(job_id)


def _assert_all_delivered(cloud, job, doc_ids):
    """SUCCEEDED, every document in the result once per chunk, counts not doubled."""
    assert job["status"] == "SUCCEEDED", job
    rows = _result_rows(cloud, job["job_id"])
    assert {r["document_id"] for r in rows} == doc_ids
    assert len({r["chunk_id"] for r in rows}) == len(rows) == job["counts"]["embedded"]
    assert job["counts"] == {
        "documents": len(doc_ids),
        "chunks": len(rows),
        "embedded": len(rows),
        "failed": 0,
    }


def _fault_count(cloud, fn, kind):
    name = cloud.lambda_service.resolve_name(fn)
    return sum(1 for f in cloud.faults.lambdas.log if f == (name, kind))


def _executions_of(cloud, job_id):
    sfn = cloud.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=cloud.state_machine_arn)["executions"]
    return [e for e in listed if e["name"] == job_id]


def test_lambda_service_answers_crash_and_timeout_like_lambda(faults):
    cloud = faults
    # the admin route, as bench/load.py would use it
    req = urllib.request.Request(
        cloud.lambda_url + "/_local/faults",
        data=json.dumps({"FailFunction": {"crash": 1, "hang": 1, "timeout_s": 1}}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())[cloud.name_of("FailFunction")]["crash"] == 1
    lam = cloud.client("lambda")
    crashed = lam.invoke(FunctionName="FailFunction", Payload=b'{"job_id": "x"}')
    assert crashed["StatusCode"] == 200 and crashed["FunctionError"] == "Unhandled"
    assert json.loads(crashed["Payload"].read())["errorType"] == "Runtime.ExitError"
    t0 = time.monotonic()
    timed_out = lam.invoke(FunctionName="FailFunction", Payload=b'{"job_id": "x"}')
    assert timed_out["FunctionError"] == "Unhandled" and time.monotonic() - t0 < 10
    payload = json.loads(timed_out["Payload"].read())
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "timed out after 1.00 seconds" in payload["errorMessage"]
    # the plan is spent: the next invoke runs the real handler again (no such job)
    after = json.loads(
        lam.invoke(FunctionName="FailFunction", Payload=b'{"job_id": "x"}')["Payload"].read()
    )
    assert after["errorType"] == "JobNotFound"


def test_preprocess_worker_crash_is_retried_and_the_job_succeeds(faults):
    cloud = faults
    cloud.faults.lambdas.set({"PreprocessFunction": {"crash": 1}})
    job_id, docs = _submit(cloud, "pre-crash")
    job = cloud.jobs.wait(job_id)
    assert _fault_count(cloud, "PreprocessFunction", "crash") == 1
    _assert_all_delivered(cloud, job, docs)
    assert len(_executions_of(cloud, job_id)) == 1


def test_deliver_crash_after_its_writes_reruns_without_double_counting(faults):
    cloud = faults
    # deliver runs to completion (files, SUCCEEDED record, event) but its reply is lost
    cloud.faults.lambdas.set({"DeliverFunction": {"crash_after": 1}})
    job_id, docs = _submit(cloud, "del-crash", n=4)
    job = cloud.jobs.wait(job_id)
    assert _fault_count(cloud, "DeliverFunction", "crash_after") == 1
    _assert_all_delivered(cloud, job, docs)
    assert cloud.jobs.execution_status(job_id) == "SUCCEEDED"


def test_preprocess_crashing_every_time_fails_the_job_after_two_retries(faults):
    cloud = faults
    cloud.faults.lambdas.set({"PreprocessFunction": {"crash": 10}})
    job_id, _ = _submit(cloud, "pre-dead")
    job = cloud.jobs.wait(job_id, timeout=120)
    assert job["status"] == "FAILED" and job["error"]["code"] == "Runtime.ExitError", job
    assert _fault_count(cloud, "PreprocessFunction", "crash") == 3  # 1 try + 2 retries
    # nothing lost silently: the job names the reason for all of its documents
    assert "Runtime exited" in job["error"]["message"]
    assert cloud.jobs.execution_status(job_id) == "FAILED"


def test_deliver_timeout_is_not_retried_and_fails_the_job_keeping_counts(faults):
    cloud = faults
    cloud.faults.lambdas.set({"DeliverFunction": {"hang": 5, "timeout_s": 2}})
    job_id, docs = _submit(cloud, "del-hang")
    job = cloud.jobs.wait(job_id, timeout=120)
    assert job["status"] == "FAILED" and job["error"]["code"] == "Sandbox.Timedout", job
    assert _fault_count(cloud, "DeliverFunction", "hang") == 1  # not retried
    assert job["counts"]["documents"] == len(docs)  # preprocess's counts are kept
    assert cloud.jobs.execution_status(job_id) == "FAILED"


def test_transient_s3_put_failures_are_retried_by_the_sdk(faults):
    cloud = faults
    key = f"s3-flaky-{uuid.uuid4()}"
    job_id = deterministic_job_id("api", key)
    prefix = f"jobs/{job_id}/"
    cloud.faults.s3.set(
        [
            {"prefix": prefix + "input/", "count": 1},  # api
            {"prefix": prefix + "batches/", "count": 2},  # preprocess
            {"prefix": prefix + "outputs/", "count": 1, "status": 500, "code": "InternalError"},
            {"prefix": prefix + "result/", "count": 2},  # deliver
        ]
    )
    docs = [{"id": f"s3-{i}", "text": f"Flaky storage document number {i}."} for i in range(3)]
    _post(cloud.api_url + "/v1/jobs", {"documents": docs}, {"Idempotency-Key": key})
    job = cloud.jobs.wait(job_id)
    injected = list(cloud.faults.s3.injected)
    assert len(injected) == 6, injected
    assert {k.split("/")[2] for k in injected} == {"input", "batches", "outputs", "result"}
    _assert_all_delivered(cloud, job, {d["id"] for d in docs})
    assert len(_executions_of(cloud, job_id)) == 1


def _put_stuck_job(cloud, job_id, age_s, status="RUNNING"):
    created = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat(timespec="milliseconds")
    created = created.replace("+00:00", "Z")
    item = {
        "job_id": {"S": job_id},
        "status": {"S": status},
        "source": {"S": "api"},
        "input_uri": {"S": f"s3://{cloud.bucket}/jobs/{job_id}/input/documents.jsonl"},
        "options": {
            "M": {
                "chunk_tokens": {"N": "256"},
                "chunk_overlap": {"N": "32"},
                "batch_size": {"N": "16"},
            }
        },
        "counts": {
            "M": {
                "documents": {"N": "5"},
                "chunks": {"N": "9"},
                "embedded": {"N": "0"},
                "failed": {"N": "0"},
            }
        },
        "created_at": {"S": created},
        "updated_at": {"S": created},
        "expires_at": {"N": "2000000000"},
    }
    cloud.client("dynamodb").put_item(TableName=cloud.jobs_table, Item=item)


def test_watchdog_fails_a_stuck_job_on_demand_and_on_its_schedule(faults):
    cloud = faults
    # a job RUNNING for 2 h whose execution died (there is none), and a QUEUED one
    stuck, queued = str(uuid.uuid4()), str(uuid.uuid4())
    _put_stuck_job(cloud, stuck, 2 * 3600)
    _put_stuck_job(cloud, queued, 2 * 3600, status="QUEUED")
    report = cloud.schedules.run_now("WatchdogFunction", {"deadline_seconds": 3600})
    assert set(report["failed"]) == {stuck, queued}, report
    for job_id in (stuck, queued):
        job = cloud.jobs.get(job_id)
        assert job["status"] == "FAILED" and job["error"]["code"] == "watchdog_timeout", job
        assert job["counts"]["documents"] == 5  # counts kept
    # the schedule (rate(5 minutes) in the template) runs it on its own, every 0.5 s here
    later = str(uuid.uuid4())
    _put_stuck_job(cloud, later, 3 * 3600)
    cloud.schedules.start(0.5, {"deadline_seconds": 3600})
    try:
        deadline = time.monotonic() + 30
        while cloud.jobs.get(later)["status"] != "FAILED" and time.monotonic() < deadline:
            time.sleep(0.25)
    finally:
        cloud.schedules.stop()
    assert cloud.jobs.get(later)["error"]["code"] == "watchdog_timeout"


def test_endpoint_killed_mid_job_and_restarted_the_job_succeeds(drained):
    """The endpoint's process dies (SIGKILL) with a request in flight and comes back 2 s later:
    the lost request and those sent while it is down fail as the runtime's 503
    ServiceUnavailable (moto_compat), which the Map's InvokeEndpoint Retry covers."""
    cloud = drained
    cloud.faults.endpoint.set(
        {"slow_s": 3, "count": 1}
    )  # holds the first request in flight for 3 s
    old_pid = cloud.endpoint.pid
    t0 = time.monotonic()
    job_id, docs = _submit(cloud, "ep-restart")
    deadline = time.monotonic() + 30
    while cloud.endpoint.metrics()["in_flight"] == 0:
        assert time.monotonic() < deadline, "no endpoint request in flight"
        time.sleep(0.05)
    cloud.endpoint.restart(down_s=0.5)  # short: full-jitter retries must outlast it
    assert cloud.endpoint.pid != old_pid
    job = cloud.jobs.wait(job_id, timeout=50)
    _assert_all_delivered(cloud, job, docs)
    assert len(_executions_of(cloud, job_id)) == 1
    assert cloud.jobs.execution_status(job_id) == "SUCCEEDED"
    history = cloud.client("stepfunctions").get_execution_history(
        executionArn=_executions_of(cloud, job_id)[0]["executionArn"], maxResults=1000
    )["events"]
    errors = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    assert "SageMakerRuntime.ServiceUnavailableException" in errors, errors
    assert "States.Runtime" not in errors, errors
    cloud.jobs.drain(timeout=30)
    assert cloud.jobs.running_executions() == 0
    assert time.monotonic() - t0 < 60


def test_no_job_is_left_running(faults):
    """After the fault tests (and everything before them in the session): nothing non-terminal."""
    cloud = faults
    ddb = cloud.client("dynamodb")
    left = []
    for status in ("QUEUED", "RUNNING"):
        out = ddb.query(
            TableName=cloud.jobs_table,
            IndexName="status-created_at",
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}},
        )
        left += [i["job_id"]["S"] for i in out["Items"]]
    assert left == []
    assert cloud.jobs.running_executions() == 0
