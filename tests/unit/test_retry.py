"""Retry of FAILED/PARTIAL jobs (tandem_common/retry.py) and `POST /v1/jobs/{id}/retry`, against
moto, with the original job made by the real preprocess and deliver steps."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from conftest import BUCKET, fake_endpoint_run, job_item, s3_jsonl
from tandem_common.adapters.jobs import JobStore
from tandem_common.contracts import deterministic_job_id
from tandem_common.models import Document, ErrorInfo, JobCreate, JobOptions, Source
from tandem_common.settings import get_settings
from tandem_common.usecases.retry import is_transient, retry_job_id

JOB = "2e7b9d1f-3a5c-4b6d-9e8f-0a1b2c3d4e5f"  # the job of events/api/retry_job*.json, get_job.json
SFN = "arn:aws:states:us-east-1:123456789012:stateMachine:tandem-pipeline"
KEY = "inbox/retry-test/docs.jsonl"
TEXTS = {
    "ok-1": "The first document embeds fine.",
    "flaky-2": "The second document sits in a batch the endpoint failed.",
    "lost-3": "The third document's batch output never arrived.",
}
INPUT = (
    b"".join(json.dumps({"id": i, "text": t}).encode() + b"\n" for i, t in TEXTS.items())
    + b'{"id": "bad-utf8", "text": "caf\xe9"}\n'  # invalid UTF-8: rejected by preprocess
    + json.dumps({"id": "blank-5", "text": " \u200b "}).encode()  # empty once normalised
    + b"\n"
)


def executions() -> list[str]:
    out = boto3.client("stepfunctions").list_executions(stateMachineArn=SFN)["executions"]
    return sorted(e["name"] for e in out)


def make_job(load_handler: Any, ctx: Any, fail_batches: dict[str, str] | None = None) -> Any:
    """The original job, S3-sourced, one document per batch, run through preprocess and
    deliver. `fail_batches`: document id -> "error" (the Map reports a batch error) or
    "missing" (no output, no error)."""
    from tandem_common.usecases.intake import JobIntake

    fail_batches = (
        {"flaky-2": "error", "lost-3": "missing"} if fail_batches is None else fail_batches
    )
    boto3.client("s3").put_object(Bucket=BUCKET, Key=KEY, Body=INPUT)
    request = JobCreate(
        source=Source(s3_uri=f"s3://{BUCKET}/{KEY}"), options=JobOptions(batch_size=1)
    )
    JobIntake(get_settings()).submit(JOB, request, "s3")
    pre = load_handler("preprocess").lambda_handler({"job_id": JOB}, ctx)
    doc_of_batch = {
        ref["index"]: s3_jsonl(f"jobs/{JOB}/batches/rows-{ref['index']:05d}.jsonl")[0][
            "document_id"
        ]
        for ref in pre["batches"]
    }
    results = []
    for ref in pre["batches"]:
        doc = doc_of_batch[ref["index"]]
        mode = fail_batches.get(doc)
        if mode is None:
            fake_endpoint_run(ref["inputs_uri"], ref["outputs_uri"])
            results.append({"index": ref["index"], "ok": True})
        elif mode == "error":
            error = {"Error": "SageMakerRuntime.ModelErrorException", "Cause": "500 from primary"}
            results.append({"index": ref["index"], "ok": False, "error": error})
    return load_handler("deliver").lambda_handler({"job_id": JOB, "batch_results": results}, ctx)


def test_failure_reasons_are_classified_transient_or_permanent() -> None:
    assert is_transient("batch failed: SageMakerRuntime.ModelErrorException: 500")
    assert is_transient("batch output missing")
    assert is_transient("batch output has 1x8, expected 2 rows")
    assert is_transient("batch not indexed: S3 Vectors PutVectors failed: TooManyRequestsException")
    for permanent in (
        "invalid UTF-8 at byte 3",
        "empty document",
        "duplicate document id",
        "chunk 0 cannot be indexed: its text and metadata are 50095 bytes",
    ):
        assert not is_transient(permanent)


def test_retry_of_partial_job_holds_only_the_transiently_failed_documents(
    api: Any, event: Any, load_handler: Any, lambda_context: Any
) -> None:
    # Given a PARTIAL job: one document embedded, two in failed batches, two rejected as input
    delivered = make_job(load_handler, lambda_context)
    assert delivered["status"] == "PARTIAL"
    # When it is retried through the API
    status, body = api(event("api", "retry_job"))
    # Then a new job holds exactly the two batch failures, with their original text
    rid = retry_job_id(JOB)
    assert status == 202, body
    assert body["job_id"] == rid and body["retry_of"] == JOB and body["status"] == "QUEUED"
    assert body["documents"] == 2 and body["links"] == {"self": f"/v1/jobs/{rid}"}
    assert {s["id"]: s["reason"] for s in body["skipped"]} == {
        "line-4": "invalid UTF-8 at byte 31",  # undecodable line: named by number
        "blank-5": "empty document",
    }
    assert body["skipped_count"] == 2
    rows = s3_jsonl(f"jobs/{rid}/input/documents.jsonl")
    assert rows == [{"id": i, "text": TEXTS[i]} for i in ("flaky-2", "lost-3")]
    retry = job_item(rid)
    assert retry is not None
    assert retry["retry_of"] == JOB and retry["source"] == "api"
    assert retry["options"] == job_item(JOB)["options"]
    assert retry["input_uri"] == f"s3://{BUCKET}/jobs/{rid}/input/documents.jsonl"
    assert job_item(JOB)["retries"] == [rid]
    assert executions() == sorted([JOB, rid])
    # And the GET view shows the link both ways
    get = event("api", "get_job")
    assert api(get)[1]["retries"] == [rid]
    get["rawPath"] = get["requestContext"]["http"]["path"] = f"/v1/jobs/{rid}"
    assert api(get)[1]["retry_of"] == JOB


def test_repeated_retry_returns_the_same_job_and_starts_one_execution(
    api: Any, event: Any, load_handler: Any, lambda_context: Any
) -> None:
    make_job(load_handler, lambda_context)
    first = api(event("api", "retry_job"))
    second = api(event("api", "retry_job"))
    assert first == second and first[0] == 202
    assert executions() == sorted([JOB, retry_job_id(JOB)])
    assert job_item(JOB)["retries"] == [retry_job_id(JOB)]
    # a different Idempotency-Key is a deliberate second retry: a second job, linked too
    status, other = api(event("api", "retry_job_idempotency_key"))
    assert status == 202 and other["job_id"] == retry_job_id(JOB, "retry-attempt-2")
    assert other["job_id"] != first[1]["job_id"]
    assert len(executions()) == 3
    assert job_item(JOB)["retries"] == [first[1]["job_id"], other["job_id"]]


def test_retry_after_the_retry_job_started_still_answers_the_same(
    api: Any, event: Any, load_handler: Any, lambda_context: Any
) -> None:
    make_job(load_handler, lambda_context)
    first = api(event("api", "retry_job"))
    JobStore(get_settings().resources.jobs_table).mark_running(first[1]["job_id"])
    status, again = api(event("api", "retry_job"))
    assert status == 202 and again["job_id"] == first[1]["job_id"]
    assert again["status"] == "RUNNING" and again["documents"] == 2
    assert len(executions()) == 2


def test_job_failed_as_a_whole_retries_every_valid_document(
    api: Any, event: Any, load_handler: Any, lambda_context: Any
) -> None:
    # Given a job that the state machine's Catch marked FAILED before deliver ran
    from tandem_common.usecases.intake import JobIntake

    boto3.client("s3").put_object(Bucket=BUCKET, Key=KEY, Body=INPUT)
    request = JobCreate(source=Source(s3_uri=f"s3://{BUCKET}/{KEY}"))
    JobIntake(get_settings()).submit(JOB, request, "s3")
    JobStore(get_settings().resources.jobs_table).mark_failed(
        JOB, ErrorInfo(code="States.Timeout", message="task timed out")
    )
    status, body = api(event("api", "retry_job"))
    assert status == 202, body
    rows = s3_jsonl(f"jobs/{body['job_id']}/input/documents.jsonl")
    assert [r["id"] for r in rows] == list(TEXTS)
    assert {s["id"] for s in body["skipped"]} == {"line-4", "blank-5"}


def test_only_permanent_failures_is_422(
    api: Any, event: Any, load_handler: Any, lambda_context: Any
) -> None:
    make_job(load_handler, lambda_context, fail_batches={})  # PARTIAL: only input rejections
    assert job_item(JOB)["status"] == "PARTIAL"
    status, body = api(event("api", "retry_job"))
    assert status == 422 and body["error"]["code"] == "nothing_to_retry", body
    assert "line-4" in body["error"]["message"]
    assert job_item(retry_job_id(JOB)) is None and executions() == [JOB]


def test_unreadable_input_is_422(
    api: Any, event: Any, load_handler: Any, lambda_context: Any
) -> None:
    make_job(load_handler, lambda_context)
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=KEY)
    status, body = api(event("api", "retry_job"))
    assert status == 422 and body["error"]["code"] == "input_unavailable", body


def test_running_or_succeeded_job_is_409(api: Any, event: Any) -> None:
    from tandem_common.usecases.intake import JobIntake

    request = JobCreate(documents=[Document(id="a", text="hello")])
    JobIntake(get_settings()).submit(JOB, request, "api")
    status, body = api(event("api", "retry_job"))
    assert status == 409 and body["error"]["code"] == "not_retryable"
    assert "QUEUED" in body["error"]["message"]
    store = JobStore(get_settings().resources.jobs_table)
    store.mark_running(JOB)
    store.finish(JOB, "SUCCEEDED", store.require(JOB).counts, "s3://x/y", [])
    assert api(event("api", "retry_job"))[0] == 409
    assert executions() == [JOB]


@pytest.mark.parametrize("name", ["retry_job_unknown", "retry_job_not_uuid"])
def test_unknown_job_is_404(api: Any, event: Any, name: str) -> None:
    status, body = api(event("api", name))
    assert status == 404 and body["error"]["code"] == "not_found"


def test_retry_route_is_in_the_openapi_schema(api: Any, event: Any) -> None:
    status, schema = api(event("api", "openapi"))
    assert status == 200
    route = schema["paths"]["/v1/jobs/{job_id}/retry"]["post"]
    assert {"202", "404", "409", "422"} <= set(route["responses"])


def test_retry_ids_are_deterministic_and_distinct_from_entry_point_ids() -> None:
    assert retry_job_id(JOB) == retry_job_id(JOB)
    assert retry_job_id(JOB) == deterministic_job_id("retry", JOB)
    assert retry_job_id(JOB, "k") != retry_job_id(JOB)
    assert retry_job_id(JOB) != deterministic_job_id("api", JOB)


# --- tandem redrive ---------------------------------------------------------------------------


def _queues() -> tuple[Any, str, str]:
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="tandem-JobDeadLetterQueue")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    redrive = json.dumps({"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": "3"})
    queue = sqs.create_queue(QueueName="tandem-JobQueue", Attributes={"RedrivePolicy": redrive})
    return sqs, queue["QueueUrl"], dlq


def _bodies(sqs: Any, url: str) -> list[str]:
    out = []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        out += [m["Body"] for m in msgs]
    return out


def test_redrive_body_keeps_each_message_on_its_job() -> None:
    from tandem_common.contracts import s3_job_id

    from tandem.redrive import redrive_body

    assert redrive_body("this is not json", "m-1") == "this is not json"
    assert redrive_body("[1, 2]", "m-1") == "[1, 2]"
    with_id = json.dumps({"job_id": JOB, "s3_uri": "s3://b/k"})
    assert redrive_body(with_id, "m-1") == with_id
    # a queue message without a job_id keeps the job ingest gave it: uuid5("sqs:" + MessageId)
    body = json.loads(redrive_body(json.dumps({"documents": [{"id": "a", "text": "x"}]}), "m-1"))
    assert body["job_id"] == deterministic_job_id("sqs", "m-1") and body["documents"]
    # an undelivered S3 event, bare or as a Lambda on-failure record, becomes its S3 job
    event: dict[str, Any] = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": BUCKET}, "object": {"key": "inbox/u/a.txt", "etag": "e1"}},
    }
    expected = {
        "job_id": s3_job_id(BUCKET, "inbox/u/a.txt", "e1"),
        "s3_uri": f"s3://{BUCKET}/inbox/u/a.txt",
    }
    assert json.loads(redrive_body(json.dumps(event), "m-2")) == expected
    record = {"requestContext": {"condition": "RetriesExhausted"}, "requestPayload": event}
    assert json.loads(redrive_body(json.dumps(record), "m-3")) == expected
    event["detail"]["object"]["key"] = "elsewhere/a.txt"
    assert redrive_body(json.dumps(event), "m-2") == json.dumps(event)


def test_redrive_moves_every_dlq_message_to_the_queue(cloud: None) -> None:
    from tandem.redrive import redrive_messages

    sqs, queue, dlq = _queues()
    bodies = [f"poison-{i}" for i in range(23)]  # three batches
    for b in bodies:
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=b,
            MessageAttributes={"origin": {"DataType": "String", "StringValue": "test"}},
        )
    assert redrive_messages(sqs, dlq, queue) == (23, 0)
    assert _bodies(sqs, dlq) == []
    assert sorted(_bodies(sqs, queue)) == sorted(bodies)


def test_redrive_deletes_only_what_was_sent(cloud: None) -> None:
    from tandem.redrive import redrive_messages

    sqs, queue, dlq = _queues()
    for i in range(4):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"m-{i}")

    class HalfFailing:
        """SendMessageBatch reports entries "1" and "3" as failed."""

        def __getattr__(self, name: str) -> Any:
            return getattr(sqs, name)

        def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
            ok = [e for e in Entries if e["Id"] not in ("1", "3")]
            out = sqs.send_message_batch(QueueUrl=QueueUrl, Entries=ok)
            out["Failed"] = [{"Id": "1", "SenderFault": False, "Code": "InternalError"}]
            return out

    assert redrive_messages(HalfFailing(), dlq, queue, visibility=0) == (2, 2)
    assert sorted(_bodies(sqs, queue)) == ["m-0", "m-2"]
    assert sorted(_bodies(sqs, dlq)) == ["m-1", "m-3"]  # not sent -> still in the DLQ


def test_redrive_cli_finds_the_queues_by_stack_outputs(cloud: None, monkeypatch: Any) -> None:
    from click.testing import CliRunner

    from tandem import cli

    sqs, queue, dlq = _queues()
    sqs.send_message(QueueUrl=dlq, MessageBody="poison")
    cfn = boto3.client("cloudformation")
    outputs = [
        {"OutputKey": "JobQueueUrl", "OutputValue": queue},
        {"OutputKey": "JobDeadLetterQueueUrl", "OutputValue": dlq},
    ]
    real_client = boto3.client

    class Cfn:
        meta = cfn.meta

        def describe_stacks(self, StackName: str) -> Any:
            assert StackName == "my-stack"
            return {"Stacks": [{"Outputs": outputs}]}

    monkeypatch.setattr(
        boto3,
        "client",
        lambda name, **kw: Cfn() if name == "cloudformation" else real_client(name, **kw),
    )
    out = CliRunner().invoke(cli.main, ["redrive", "--stack", "my-stack"])
    assert out.exit_code == 0, out.output
    assert out.output == f"moved 1 message(s) from {dlq} to {queue}\n"
    assert _bodies(sqs, queue) == ["poison"]
