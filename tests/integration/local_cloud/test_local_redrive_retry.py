"""Redrive and retry on the local cloud: `POST /v1/jobs/{id}/retry` / `tandem retry` re-run only
a job's transiently failed documents, idempotently; `tandem redrive` moves the job DLQ back."""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.integration


def _post(url, body=None, headers=None):
    req = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())


def _vector_docs(cloud, job_id):
    return sorted({row["document_id"] for row in cloud.jobs.result_rows(job_id)})


def _executions(cloud, job_id):
    sfn = cloud.client("stepfunctions")
    out = sfn.list_executions(stateMachineArn=cloud.state_machine_arn)["executions"]
    return [e for e in out if e["name"] == job_id]


def test_retry_of_a_partial_job_reruns_only_its_failed_documents(drained):
    from tandem.cli import main

    cloud = drained
    tag = uuid.uuid4().hex[:8]
    docs = [
        {"id": f"{tag}-{i}", "text": f"retry test {i}: the tide turns at noon."} for i in range(3)
    ]
    docs.append({"id": f"{tag}-blank", "text": " \u200b\t "})  # empty: a permanent rejection
    # Given a PARTIAL job: one of its three one-document batches gets an off-contract answer
    cloud.faults.endpoint.set({"malformed": 1})
    _, accepted = _post(
        cloud.api_url + "/v1/jobs", {"documents": docs, "options": {"batch_size": 1}}
    )
    job_id = accepted["job_id"]
    job = cloud.jobs.wait(job_id)
    assert job["status"] == "PARTIAL", job
    failed = {f["id"]: f["reason"] for f in job["failed_documents"]}
    assert failed.pop(f"{tag}-blank") == "empty document"
    assert len(failed) == 1 and next(iter(failed.values())).startswith("batch output"), job
    [flaky] = failed
    cloud.faults.endpoint.set(None)

    # When it is retried through the API
    status, retry = _post(cloud.api_url + f"/v1/jobs/{job_id}/retry")
    # Then the retry job holds the transient failure only, and skips the permanent one
    assert status == 202 and retry["retry_of"] == job_id and retry["documents"] == 1, retry
    assert retry["skipped"] == [{"id": f"{tag}-blank", "reason": "empty document"}]
    done = cloud.jobs.wait(retry["job_id"])
    assert done["status"] == "SUCCEEDED" and done["retry_of"] == job_id, done
    assert done["counts"]["documents"] == 1 and done["counts"]["failed"] == 0
    assert _vector_docs(cloud, retry["job_id"]) == [flaky]
    assert cloud.jobs.get(job_id)["retries"] == [retry["job_id"]]

    # And `tandem retry` (a repeat) answers with the same job, already done; one execution
    out = CliRunner().invoke(main, ["retry", job_id, "--api", cloud.api_url])
    assert out.exit_code == 0, out.output
    assert f"retry job {retry['job_id']} of {job_id}: 1 document(s), SUCCEEDED" in out.output
    assert f"job {retry['job_id']}: SUCCEEDED" in out.output
    assert f"not retried {tag}-blank: empty document" in out.output
    assert len(_executions(cloud, retry["job_id"])) == 1
    # A succeeded job has nothing to retry: 409
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(cloud.api_url + f"/v1/jobs/{retry['job_id']}/retry")
    assert err.value.code == 409


def _dlq_counts(cloud):
    sqs = cloud.client("sqs")
    attrs = sqs.get_queue_attributes(
        QueueUrl=cloud.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def _take_from_dlq(cloud, body, timeout=40):
    """Wait for `body` in the DLQ and delete it (other messages are left alone)."""
    sqs = cloud.client("sqs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in sqs.receive_message(
            QueueUrl=cloud.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=1
        ).get("Messages", []):
            if m["Body"] == body:
                sqs.delete_message(QueueUrl=cloud.dlq_url, ReceiptHandle=m["ReceiptHandle"])
                return True
        time.sleep(0.5)
    return False


def test_redrive_moves_the_dlq_back_to_the_job_queue(drained):
    from tandem_common.contracts import deterministic_job_id

    from tandem.cli import main

    cloud = drained
    sqs = cloud.client("sqs")
    poison = f"still not json {uuid.uuid4()}"
    # Given a poison message that went through the job queue into the DLQ...
    sqs.send_message(QueueUrl=cloud.queue_url, MessageBody=poison)
    assert _take_from_dlq(cloud, poison)
    sqs.send_message(QueueUrl=cloud.dlq_url, MessageBody=poison)  # (put back, as SQS left it)
    # ...and a good job request that was dead-lettered while the pipeline was down
    tag = uuid.uuid4().hex[:8]
    good = {"documents": [{"id": f"{tag}-0", "text": "redriven after the outage ended."}]}
    message_id = sqs.send_message(QueueUrl=cloud.dlq_url, MessageBody=json.dumps(good))["MessageId"]
    before, _ = _dlq_counts(cloud)
    assert before >= 2
    # When `tandem redrive` runs against the local cloud's moto URL
    stack = cloud.template.stack_name
    out = CliRunner().invoke(main, ["redrive", "--local", cloud.moto_url, "--stack", stack])
    # Then every message moved, found by the local stack's queue names
    assert out.exit_code == 0, out.output
    assert re.fullmatch(
        rf"moved {before} message\(s\) from \S+/{stack}-JobDeadLetterQueue to \S+/{stack}-JobQueue\n",
        out.output,
    ), out.output
    assert _dlq_counts(cloud)[0] < before
    # the good one becomes the job ingest named after its first MessageId (no duplicate job)
    job_id = deterministic_job_id("sqs", message_id)
    job = cloud.jobs.wait(job_id, timeout=60)
    assert job["status"] == "SUCCEEDED" and job["source"] == "sqs", job
    assert _vector_docs(cloud, job_id) == [f"{tag}-0"]
    # the poison one, fixed by nothing, lands in the DLQ again after maxReceiveCount receives
    assert _take_from_dlq(cloud, poison)
