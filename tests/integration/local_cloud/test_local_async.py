"""EndpointMode=async through the local cloud: InvokeEndpointAsync to the local async front, the
real model, SageMaker's SNS notifications to the complete function, task tokens in moto's
interpreter, and the faults of docs/RELIABILITY.md ("Asynchronous inference").

Its own local cloud (stack `tandemasync`: local clouds in one process share moto's state) with
short async limits: a 20 s heartbeat, a 120 s try, the sweep (the complete function's schedule)
every 2 s, resuming a try from its S3 result 4 s after it was written (60 s in AWS). `InlineMapMaxBatches=2`: a job of three batches or more runs the Distributed
Map, whose children run Standard in async mode.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from tandem_common.contracts import ASYNC_FUNCTIONS, api_job_id

from tandem.local import local_client

pytestmark = pytest.mark.integration

HEARTBEAT_S = 20
OVERRIDES = {
    "EndpointMode": "async",
    "AsyncHeartbeatSeconds": str(HEARTBEAT_S),
    "AsyncTaskTimeoutSeconds": "120",
    "AsyncRequestTTLSeconds": "60",
    "AsyncInvocationTimeoutSeconds": "60",
    "InlineMapMaxBatches": "2",
}
BATCH = 16  # LOCAL_PARAMETERS' BatchSize


@pytest.fixture(scope="module")
def async_cloud() -> Iterator[Any]:
    from tandem.local.cloud import LocalCloud

    with LocalCloud(
        stack_name="tandemasync",
        parameter_overrides=OVERRIDES,
        schedule_interval_s=2,
        extra_function_env={"ASYNC_NOTIFICATION_GRACE_S": "4"},
    ) as cloud:
        yield cloud


@pytest.fixture
def acloud(async_cloud: Any) -> Iterator[Any]:
    """Nothing running or queued, every fault cleared and the sweep on, before and after."""

    def reset() -> None:
        async_cloud.jobs.drain(timeout=300)
        async_cloud.faults.clear()
        async_cloud.schedules.resume("CompleteFunction")
        async_cloud.async_front.idle_s = None
        async_cloud.async_front.fault_log.clear()

    reset()
    yield async_cloud
    reset()


def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _docs(tag: str, batches: int) -> list[dict[str, str]]:
    return [
        {"id": f"{tag}-{i}", "text": f"Document {i} about {tag}: the tide rises at dawn."}
        for i in range(batches * BATCH)
    ]


def _submit(cloud: Any, docs: list[dict[str, str]]) -> str:
    status, body = _post(cloud.api_url + "/v1/jobs", {"documents": docs})
    assert status == 202, body
    return str(body["job_id"])


def _inferences(cloud: Any, job_id: str) -> list[dict[str, Any]]:
    items = cloud.client("dynamodb").scan(TableName=cloud.name_of("InferenceTable"))["Items"]
    found = [{k: next(iter(v.values())) for k, v in item.items()} for item in items]
    return sorted((i for i in found if i["job_id"] == job_id), key=lambda i: i["inference_id"])


def _accounted(cloud: Any, job: dict[str, Any], docs: list[dict[str, str]]) -> set[str]:
    """Every document is in the result or in the failure list, never both; returns the failed."""
    embedded = {r["document_id"] for r in cloud.jobs.result_rows(job["job_id"])}
    failed = {f["id"] for f in cloud.jobs.result_file(job["job_id"], "result/failures.jsonl")}
    assert embedded | failed == {d["id"] for d in docs} and not embedded & failed
    return failed


def _vectors(cloud: Any, job_id: str) -> dict[str, np.ndarray]:
    return {
        r["chunk_id"]: np.asarray(r["embedding"], dtype=np.float32)
        for r in cloud.jobs.result_rows(job_id)
    }


def test_an_async_job_succeeds_with_the_vectors_of_the_real_time_path(acloud: Any) -> None:
    docs = _docs("parity", 2)
    job_id = _submit(acloud, docs)
    job = acloud.jobs.wait(job_id, timeout=300)
    assert job["status"] == "SUCCEEDED", job
    # the real-time path's call: InvokeEndpoint (boto3, the runtime API) on the same container
    rows = acloud.jobs.result_rows(job_id)
    assert {r["document_id"] for r in rows} == {d["id"] for d in docs}
    texts = {d["id"]: d["text"] for d in docs}
    realtime = local_client("sagemaker-runtime", acloud.endpoint.url, acloud.region)
    answer = realtime.invoke_endpoint(
        EndpointName="tandem-embeddings",
        ContentType="application/json",
        Body=json.dumps({"inputs": [texts[r["document_id"]] for r in rows]}),
    )
    ref = np.asarray(json.loads(answer["Body"].read())["outputs"], dtype=np.float32)
    got = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
    cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() >= 0.999, cos.min()
    # each batch went through InvokeEndpointAsync and a task token, resumed once: by its
    # notification, or by the sweep when that came first (a cold complete function, say)
    events = acloud.jobs.history(job_id)
    submitted = [e for e in events if e["type"] == "TaskSubmitted"]
    assert [e["taskSubmittedEventDetails"]["resource"] for e in submitted] == [
        "invoke.waitForTaskToken"
    ] * 2
    resumed = _resumed(events)
    assert sorted(o["inference_id"] for o in resumed) == [f"{job_id}-00000-0", f"{job_id}-00001-0"]
    assert {o["found_by"] for o in resumed} <= {"notification", "sweep"}
    assert [i["state"] for i in _inferences(acloud, job_id)] == ["succeeded", "succeeded"]


def _resumed(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outputs of the async tasks resumed by SendTaskSuccess (`found_by` says by whom)."""
    outputs = [
        json.loads(e["taskSucceededEventDetails"]["output"])
        for e in events
        if e["type"] == "TaskSucceeded"
    ]
    return [o for o in outputs if isinstance(o, dict) and "found_by" in o]


def test_a_large_async_job_runs_the_distributed_map_with_standard_children(acloud: Any) -> None:
    docs = _docs("distributed", 3)
    job = acloud.jobs.wait(_submit(acloud, docs), timeout=300)
    assert job["status"] == "SUCCEEDED", job
    types = [e["type"] for e in acloud.jobs.history(job["job_id"])]
    assert "MapRunStarted" in types and "MapRunSucceeded" in types
    assert len(_inferences(acloud, job["job_id"])) == 3
    assert not _accounted(acloud, job, docs)


def test_an_error_notification_records_that_batchs_failure_and_the_job_is_partial(
    acloud: Any,
) -> None:
    acloud.faults.endpoint.set({"error_4xx": 1})  # the container answers one batch 400
    docs = _docs("clienterror", 2)
    job = acloud.jobs.wait(_submit(acloud, docs), timeout=300)
    assert job["status"] == "PARTIAL", job
    failed = _accounted(acloud, job, docs)
    assert len(failed) == BATCH and job["counts"]["failed"] == BATCH
    reasons = {f["reason"] for f in acloud.jobs.result_file(job["job_id"], "result/failures.jsonl")}
    (reason,) = reasons  # not retried: a 4xx is the batch's failure, with SageMaker's reason
    assert reason.startswith(
        "batch failed: Tandem.ModelClientError: ClientError: Received client error (400)"
    )
    assert "injected_client_error" in reason  # the container's answer, from the failure file
    states = sorted(i["state"] for i in _inferences(acloud, job["job_id"]))
    assert states == ["failed", "succeeded"]


def test_a_5xx_notification_is_retried_and_the_job_succeeds(acloud: Any) -> None:
    acloud.faults.endpoint.set({"error_5xx": 2})
    docs = _docs("servererror", 2)
    job = acloud.jobs.wait(_submit(acloud, docs), timeout=300)
    assert job["status"] == "SUCCEEDED", job
    assert not _accounted(acloud, job, docs)
    retried = [e for e in acloud.jobs.history(job["job_id"]) if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in retried] == [
        "Tandem.ModelServerError"
    ] * 2
    assert len(_inferences(acloud, job["job_id"])) == 4  # two tries more, each its own id


def test_a_lost_notification_is_caught_by_the_sweep(acloud: Any) -> None:
    acloud.async_front.set_faults({"drop_notification": {"count": 1}})
    docs = _docs("lostnote", 2)
    job = acloud.jobs.wait(_submit(acloud, docs), timeout=300)
    assert job["status"] == "SUCCEEDED", job
    assert [k for k, _ in acloud.async_front.fault_log] == ["drop_notification"]
    found = [o["found_by"] for o in _resumed(acloud.jobs.history(job["job_id"]))]
    assert len(found) == 2 and "sweep" in found  # the dropped one can only be the sweep's
    assert not _accounted(acloud, job, docs)


def test_a_lost_request_is_caught_by_the_heartbeat_then_retried(acloud: Any) -> None:
    # no sweep, so no heartbeat: the lost try's task fails with States.HeartbeatTimeout after
    # HeartbeatSeconds, and its retry (a new try, a new inference id) succeeds
    acloud.schedules.pause("CompleteFunction")
    key = f"lostrequest-{uuid.uuid4()}"
    job_id = api_job_id(key)
    acloud.async_front.set_faults({"lose_request": {"count": 1, "match": f"{job_id}-00001-0"}})
    docs = _docs("lostrequest", 2)
    _post(acloud.api_url + "/v1/jobs", {"documents": docs}, {"Idempotency-Key": key})
    job = acloud.jobs.wait(job_id, timeout=300)
    assert job["status"] == "SUCCEEDED", job
    assert not _accounted(acloud, job, docs)
    timed_out = [e for e in acloud.jobs.history(job["job_id"]) if e["type"] == "TaskTimedOut"]
    assert len(timed_out) >= 1
    tries = [i["inference_id"] for i in _inferences(acloud, job["job_id"])]
    assert f"{job['job_id']}-00001-1" in tries


def test_requests_lost_on_every_try_fail_their_batch_and_the_job_is_partial(acloud: Any) -> None:
    acloud.schedules.pause("CompleteFunction")
    docs = _docs("alwayslost", 2)
    key = f"alwayslost-{uuid.uuid4()}"
    job_id = api_job_id(key)
    acloud.async_front.set_faults({"lose_request": {"count": 99, "match": f"{job_id}-00001-"}})
    _post(acloud.api_url + "/v1/jobs", {"documents": docs}, {"Idempotency-Key": key})
    job = acloud.jobs.wait(job_id, timeout=600)
    assert job["status"] == "PARTIAL", job
    failures = acloud.jobs.result_file(job_id, "result/failures.jsonl")
    assert {f["id"] for f in failures} == {d["id"] for d in docs[BATCH:]}
    assert all(
        re.match(r"batch failed: States\.(Heartbeat)?Timeout", f["reason"]) for f in failures
    )
    lost = [i for i in _inferences(acloud, job_id) if "-00001-" in i["inference_id"]]
    assert len(lost) == 3  # the first try and its two retries


def test_a_duplicate_notification_changes_nothing(acloud: Any) -> None:
    acloud.schedules.pause("CompleteFunction")  # only notifications resume the tasks here
    acloud.async_front.set_faults({"duplicate_notification": {"count": 2}})
    docs = _docs("duplicate", 2)
    job = acloud.jobs.wait(_submit(acloud, docs), timeout=300)
    assert job["status"] == "SUCCEEDED", job
    assert not _accounted(acloud, job, docs)
    assert job["counts"]["embedded"] == len(docs) and job["progress"]["batches_done"] == 2
    events = acloud.jobs.history(job["job_id"])
    # one callback per try took effect: two resumed tasks (both by their notification: the sweep
    # is paused), two collect steps, nothing twice. A try may still time out on its heartbeat on
    # a slow machine (no sweep, no heartbeat) and be retried; each try is submitted once and
    # closed at most once whatever its timing, and only the two succeeded tries resumed a task.
    tries = _inferences(acloud, job["job_id"])
    assert sum(e["type"] == "TaskSubmitted" for e in events) == len(tries) >= 2
    assert [o["found_by"] for o in _resumed(events)] == ["notification", "notification"]
    states = [i["state"] for i in tries]
    assert states.count("succeeded") == 2 and set(states) <= {"succeeded", "abandoned", "pending"}
    # ...and the complete function saw the copies find their try closed: a log line each. The
    # second copy of a notification may still be on its way when the job ends: wait for it
    log = Path(acloud.log_dir) / "tandemasync-CompleteFunction.log"

    def copies() -> list[str]:
        lines = log.read_text().splitlines()
        return [line for line in lines if "try closed already" in line and job["job_id"] in line]

    deadline = time.monotonic() + 120
    while len(copies()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(copies()) >= 2, copies()


def test_the_endpoint_killed_mid_request_recovers(acloud: Any) -> None:
    acloud.faults.endpoint.set({"slow_s": 20, "count": 1})  # one request stays in flight
    docs = _docs("killed", 2)
    job_id = _submit(acloud, docs)
    deadline = time.monotonic() + 120
    while acloud.async_front.metrics()["running"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    acloud.endpoint.restart()
    job = acloud.jobs.wait(job_id, timeout=300)
    assert job["status"] == "SUCCEEDED", job
    assert not _accounted(acloud, job, docs)
    errors = [
        e["taskFailedEventDetails"]["error"]
        for e in acloud.jobs.history(job_id)
        if e["type"] == "TaskFailed"
    ]
    assert "Tandem.InferenceFailed" in errors  # the instance failed mid-request: retried


def test_scaled_to_zero_the_front_holds_requests_while_the_model_starts(acloud: Any) -> None:
    front = acloud.async_front
    front.idle_s = 1.0
    deadline = time.monotonic() + 60
    while front.metrics()["instances"] != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert front.metrics()["instances"] == 0 and front.metrics()["scale_ins"] >= 1
    cold_before = len(front.metrics()["cold_starts_s"])
    docs = _docs("coldstart", 2)
    job = acloud.jobs.wait(_submit(acloud, docs), timeout=300)
    assert job["status"] == "SUCCEEDED", job
    cold = front.metrics()["cold_starts_s"][cold_before:]
    assert len(cold) >= 1
    print(f"local cold start from zero instances: {cold[0]:.2f} s")  # measured, not asserted


def test_an_async_endpoint_refuses_real_time_invocations(acloud: Any) -> None:
    runtime = acloud.client("sagemaker-runtime")
    with pytest.raises(ClientError) as refused:
        runtime.invoke_endpoint(EndpointName="tandem-embeddings", Body=b"{}")
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    status, body = _post(acloud.api_url + "/v1/embeddings", {"input": "hello"})
    assert status == 503 and "QueryEndpointName" in body["error"]["message"], body


def test_only_async_mode_has_the_async_functions(acloud: Any) -> None:
    from tandem.local.template import LocalTemplate

    assert set(ASYNC_FUNCTIONS) <= set(acloud.functions)
    assert not set(ASYNC_FUNCTIONS) & set(LocalTemplate(acloud.template.path).functions())


def test_no_async_job_is_left_running(acloud: Any) -> None:
    assert acloud.jobs.running_executions() == 0
    pending = [
        i
        for i in acloud.client("dynamodb").scan(TableName=acloud.name_of("InferenceTable"))["Items"]
        if i["state"]["S"] == "pending"
    ]
    assert pending == []
