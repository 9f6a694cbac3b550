"""The real pipeline on the local cloud: three entry paths, duplicates, poison messages, endpoint faults."""

from __future__ import annotations

import io
import json
import time
import urllib.request
import uuid
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.integration

SECRET_WORDS = "zanzibar-quokka-lattice"  # appears only in document text: must never reach the logs


def _post(url, body, headers=None):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())


def _docs(n, tag):
    return [
        {
            "id": f"{tag}-{i}",
            "text": f"{SECRET_WORDS} document {i} about {tag}: the tide rises at dawn.",
        }
        for i in range(n)
    ]


def _result(cloud, job_id):
    return cloud.jobs.result_rows(job_id)


def _chunk_texts(cloud, job_id):
    """chunk_id -> text, from the job's batch input files."""
    s3 = cloud.client("s3")
    out = {}
    for obj in s3.list_objects_v2(Bucket=cloud.bucket, Prefix=f"jobs/{job_id}/batches/batch-")[
        "Contents"
    ]:
        for line in s3.get_object(Bucket=cloud.bucket, Key=obj["Key"])["Body"].read().splitlines():
            row = json.loads(line)
            out[row["chunk_id"]] = row["text"]
    return out


def _check_vectors(cloud, job_id, expect_docs):
    rows = _result(cloud, job_id)
    assert {r["document_id"] for r in rows} == set(expect_docs)
    texts = _chunk_texts(cloud, job_id)
    inputs = [texts[r["chunk_id"]] for r in rows]
    _, ref = _post(cloud.endpoint_url + "/invocations", {"inputs": inputs})
    ref = np.asarray(ref["outputs"], dtype=np.float32)
    got = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
    cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() >= 0.999, cos


def test_api_inline_job(drained):
    cloud = drained
    status, body = _post(cloud.api_url + "/v1/jobs", {"documents": _docs(3, "api")})
    assert status == 202
    job = cloud.jobs.wait(body["job_id"])
    assert job["status"] == "SUCCEEDED", job
    assert job["counts"]["documents"] == 3 and job["counts"]["embedded"] == job["counts"]["chunks"]
    _check_vectors(cloud, body["job_id"], ["api-0", "api-1", "api-2"])
    with urllib.request.urlopen(cloud.api_url + f"/v1/jobs/{body['job_id']}") as r:
        view = json.loads(r.read())
    assert view["status"] == "SUCCEEDED" and view["downloads"]["shards"].startswith(cloud.moto_url)
    assert view["progress"] == {"batches": 1, "batches_done": 1}
    # The presigned downloads work, and the binary vectors match the JSONL ones row for row.
    with urllib.request.urlopen(view["downloads"]["manifest"]) as r:
        manifest = json.loads(r.read())
    assert manifest["endpoint"] == "tandem-embeddings" and manifest["dims"] == 384
    assert manifest["counts"] == job["counts"]
    with urllib.request.urlopen(
        cloud.api_url + f"/v1/jobs/{body['job_id']}/shards?start=0&limit=10"
    ) as r:
        (shard,) = json.loads(r.read())["shards"]
    with urllib.request.urlopen(shard["vectors_npy"]) as r:
        npy = np.load(io.BytesIO(r.read()))
    jsonl = np.asarray([row["embedding"] for row in _result(cloud, body["job_id"])], np.float32)
    assert npy.shape == (job["counts"]["embedded"], 384)
    np.testing.assert_allclose(npy, jsonl, atol=1e-6)


def _s3_job_id(cloud, key, put):
    from tandem_common.contracts import s3_job_id

    return s3_job_id(cloud.bucket, key, put.get("VersionId") or put["ETag"].strip('"'))


def test_s3_upload_job_and_duplicate_event(drained):
    cloud = drained
    key = f"inbox/tests/{uuid.uuid4()}.jsonl"
    body = "".join(json.dumps(d) + "\n" for d in _docs(2, "s3"))
    put = cloud.client("s3").put_object(Bucket=cloud.bucket, Key=key, Body=body.encode())
    job_id = _s3_job_id(cloud, key, put)
    job = cloud.jobs.wait(job_id)
    assert job["status"] == "SUCCEEDED" and job["source"] == "s3", job
    _check_vectors(cloud, job_id, ["s3-0", "s3-1"])
    # the same object event delivered again (EventBridge is at-least-once) -> still one job/execution
    from tandem.local.event_sources import s3_object_created_event

    event = s3_object_created_event(cloud.bucket, key, len(body), put["ETag"], put.get("VersionId"))
    result = cloud.lambda_service.invoke("IngestFunction", event)
    assert result.error_type is None, result.payload
    time.sleep(2)
    sfn = cloud.client("stepfunctions")
    names = [
        e["name"]
        for e in sfn.list_executions(stateMachineArn=cloud.state_machine_arn)["executions"]
    ]
    assert names.count(job_id) == 1
    assert cloud.jobs.get(job_id)["status"] == "SUCCEEDED"


def test_sqs_job_and_poison_message(drained):
    cloud = drained
    sqs = cloud.client("sqs")
    job_id = str(uuid.uuid4())
    sqs.send_message(
        QueueUrl=cloud.queue_url,
        MessageBody=json.dumps({"job_id": job_id, "documents": _docs(2, "sqs")}),
    )
    sqs.send_message(QueueUrl=cloud.queue_url, MessageBody="this is not json")
    job = cloud.jobs.wait(job_id)
    assert job["status"] == "SUCCEEDED" and job["source"] == "sqs", job
    _check_vectors(cloud, job_id, ["sqs-0", "sqs-1"])
    deadline = time.monotonic() + 60
    dlq: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not dlq:
        dlq = sqs.receive_message(QueueUrl=cloud.dlq_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        time.sleep(1)
    assert [m["Body"] for m in dlq] == ["this is not json"]
    attrs = sqs.get_queue_attributes(QueueUrl=cloud.queue_url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"


def _api_job(cloud, n=2, tag="f"):
    _, body = _post(cloud.api_url + "/v1/jobs", {"documents": _docs(n, tag)})
    return body["job_id"]


def test_throttling_then_success(drained):
    cloud = drained
    cloud.faults.endpoint.set({"throttle": 2})
    job = cloud.jobs.wait(_api_job(cloud, tag="throttle"))
    assert job["status"] == "SUCCEEDED", job
    assert cloud.endpoint.metrics().get("in_flight", 0) == 0


def test_slow_endpoint_past_its_deadline_is_retried(drained, endpoint_deadline_s):
    # The endpoint answers 503 at its request deadline, before the SDK's read timeout and the
    # task's TimeoutSeconds; Step Functions (or the SDK) retries ServiceUnavailable.
    cloud = drained
    plan = {"slow_s": endpoint_deadline_s + 5, "count": 1, "deadline_s": endpoint_deadline_s}
    cloud.faults.endpoint.set(plan)
    job = cloud.jobs.wait(_api_job(cloud, tag="slow"))
    assert job["status"] == "SUCCEEDED", job
    metrics = cloud.endpoint.metrics()
    assert metrics["responses"].get("503", 0) >= 1, metrics
    assert job["counts"]["embedded"] == job["counts"]["chunks"]


def test_persistent_5xx_accounts_for_every_document(drained):
    cloud = drained
    cloud.faults.endpoint.set({"error_5xx": 50})
    job_id = _api_job(cloud, tag="e5xx")
    job = cloud.jobs.wait(job_id, timeout=240)
    assert job["status"] in ("PARTIAL", "FAILED"), job
    failed = {f["id"] for f in job.get("failed_documents") or []}
    assert failed == {"e5xx-0", "e5xx-1"}, job


def test_malformed_endpoint_output(drained):
    cloud = drained
    cloud.faults.endpoint.set({"malformed": 20})
    job = cloud.jobs.wait(_api_job(cloud, tag="malformed"), timeout=240)
    assert job["status"] in ("PARTIAL", "FAILED"), job
    assert {f["id"] for f in job.get("failed_documents") or []} == {"malformed-0", "malformed-1"}, (
        job
    )


def test_missing_input_object_reaches_catch_and_fail(drained):
    cloud = drained
    sqs = cloud.client("sqs")
    job_id = str(uuid.uuid4())
    sqs.send_message(
        QueueUrl=cloud.queue_url,
        MessageBody=json.dumps(
            {"job_id": job_id, "s3_uri": f"s3://{cloud.bucket}/staging/missing-{job_id}.txt"}
        ),
    )
    job = cloud.jobs.wait(job_id)
    assert job["status"] == "FAILED" and job["error"], job
    arn = cloud.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
    hist = cloud.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in hist if "stateEnteredEventDetails" in e
    ]
    assert "RecordFailure" in entered


def test_logs_hold_no_document_text(cloud):
    cloud.jobs.drain()
    leaked = [
        p.name for p in cloud.log_dir.glob("*.log") if SECRET_WORDS in p.read_text(errors="replace")
    ]
    assert leaked == []
    assert any(cloud.log_dir.glob(f"{cloud.name_of('PreprocessFunction')}.log"))


def test_lambda_invoke_via_boto3_against_the_real_functions(cloud):
    client = cloud.client("lambda")
    r = client.invoke(
        FunctionName=cloud.name_of("FailFunction"), Payload=json.dumps({"not": "a fail event"})
    )
    assert r["FunctionError"] == "Unhandled"
    assert json.loads(r["Payload"].read())["errorType"]
