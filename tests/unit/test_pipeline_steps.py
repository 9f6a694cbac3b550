"""ingest, preprocess, deliver and fail handlers through their events/ files, against moto."""

from __future__ import annotations

import codecs
import json
from typing import Any

import boto3
import numpy as np
import pytest
from conftest import (
    BUCKET,
    JOBS_TABLE,
    fake_endpoint_run,
    job_item,
    result_matrix,
    result_rows,
    s3_bytes,
    s3_json,
    s3_jsonl,
    s3_keys,
)
from tandem_common.adapters.jobs import JobStore
from tandem_common.contracts import deterministic_job_id
from tandem_common.models import JobCreate, JobOptions, Source
from tandem_common.settings import get_settings

JOB = "0b9e6d3c-5f1a-4c2e-9a7b-1d2e3f405162"
SFN = "arn:aws:states:us-east-1:123456789012:stateMachine:tandem-pipeline"


def put(key: str, data: bytes) -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=data)


def executions() -> list[str]:
    out = boto3.client("stepfunctions").list_executions(stateMachineArn=SFN)["executions"]
    return sorted(e["name"] for e in out)


def queued_job(job_id: str, key: str, data: bytes, **options: Any) -> None:
    """Given: an input object and a QUEUED job for it (as ingest would leave it)."""
    from tandem_common.usecases.intake import JobIntake

    put(key, data)
    request = JobCreate(source=Source(s3_uri=f"s3://{BUCKET}/{key}"), options=JobOptions(**options))
    JobIntake(get_settings()).submit(job_id, request, "s3")


# --- ingest -----------------------------------------------------------------------------------


def test_s3_object_created_and_its_duplicate_make_one_job(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    ingest = load_handler("ingest")
    first = ingest.lambda_handler(event("ingest", "s3_object_created"), lambda_context)
    again = ingest.lambda_handler(event("ingest", "s3_object_created_duplicate"), lambda_context)
    assert first == again
    assert boto3.client("dynamodb").scan(TableName=JOBS_TABLE)["Count"] == 1
    assert executions() == [first["job_id"]]
    item = job_item(first["job_id"])
    assert item is not None and item["source"] == "s3"
    assert item["input_uri"] == f"s3://{BUCKET}/inbox/upload-1/docs.jsonl"


def test_duplicate_s3_event_without_idempotency_table_still_one_job(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any, monkeypatch: Any
) -> None:
    # the conditional put and the execution name alone also hold
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "")
    get_settings.cache_clear()
    ingest = load_handler("ingest")
    ingest.lambda_handler(event("ingest", "s3_object_created"), lambda_context)
    ingest.lambda_handler(event("ingest", "s3_object_created_duplicate"), lambda_context)
    assert boto3.client("dynamodb").scan(TableName=JOBS_TABLE)["Count"] == 1
    assert len(executions()) == 1


def test_object_outside_inbox_is_ignored(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    ingest = load_handler("ingest")
    assert ingest.lambda_handler(event("ingest", "s3_object_outside_inbox"), lambda_context) == {
        "skipped": True
    }
    assert boto3.client("dynamodb").scan(TableName=JOBS_TABLE)["Count"] == 0


def test_sqs_batch_with_poison_messages_fails_only_those(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    ingest = load_handler("ingest")
    out = ingest.lambda_handler(event("ingest", "sqs_batch_with_poison"), lambda_context)
    assert out == {
        "batchItemFailures": [
            {"itemIdentifier": "0f6d1c9e-0002-4000-8000-000000000002"},
            {"itemIdentifier": "0f6d1c9e-0004-4000-8000-000000000004"},
        ]
    }
    inline_id = deterministic_job_id("sqs", "0f6d1c9e-0001-4000-8000-000000000001")
    given_id = "5d2c9a10-3b4e-4f5a-8c6d-7e8f90a1b2c3"
    assert executions() == sorted([inline_id, given_id])
    assert [r["id"] for r in s3_jsonl(f"jobs/{inline_id}/input/documents.jsonl")] == [
        "doc-1",
        "doc-2",
    ]
    item = job_item(given_id)
    assert item is not None and item["source"] == "sqs"
    # redelivery of the same good message: still one job
    ingest.lambda_handler(event("ingest", "sqs_single"), lambda_context)
    assert len(executions()) == 2


# --- preprocess -------------------------------------------------------------------------------


def run_preprocess(load_handler: Any, lambda_context: Any, event: Any) -> dict[str, Any]:
    result: dict[str, Any] = load_handler("preprocess").lambda_handler(
        event("preprocess", "preprocess"), lambda_context
    )
    return result


def test_preprocess_writes_batches_and_reports_every_bad_document(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    # Given a JSONL input with good, duplicate, empty, malformed, wrong-typed and invalid lines
    lines = [
        json.dumps({"id": "good-1", "text": "Serverless  inference\u200b pipelines are cheap."}),
        json.dumps({"id": "good-2", "text": "Serverless inference pipelines are cheap."}),
        json.dumps({"id": "good-1", "text": "duplicate id"}),
        json.dumps({"id": "empty", "text": " \u200b\n\t "}),
        '{"id": "broken", "text": ',
        json.dumps({"id": "typed", "text": 42}),
        json.dumps({"id": "nul", "text": "a\u0000b"}),
    ]
    data = "\n".join(lines).encode() + b'\n{"id": "bad-utf8", "text": "\xff\xfe"}\n'
    queued_job(JOB, "inbox/u/docs.jsonl", data, chunk_tokens=32, chunk_overlap=4, batch_size=2)
    # When preprocess runs
    out = run_preprocess(load_handler, lambda_context, event)
    # Then: refs only, one batch (the two good texts normalise to the same chunk: deduped)
    assert out["mode"] == "inline" and out["batch_count"] == 1
    assert out["batches"] == [
        {
            "index": 0,
            "inputs_uri": f"s3://{BUCKET}/jobs/{JOB}/batches/batch-00000.jsonl",
            "outputs_uri": f"s3://{BUCKET}/jobs/{JOB}/outputs/batch-00000.npy",
        }
    ]
    batch = s3_jsonl(f"jobs/{JOB}/batches/batch-00000.jsonl")
    assert batch == [{"chunk_id": "good-1#0", "text": "Serverless inference pipelines are cheap."}]
    rows = s3_jsonl(f"jobs/{JOB}/batches/rows-00000.jsonl")
    assert [(r["chunk_id"], r["document_id"], r["row"]) for r in rows] == [
        ("good-1#0", "good-1", 0),
        ("good-2#0", "good-2", 0),
    ]
    assert s3_jsonl(f"jobs/{JOB}/batches/documents.jsonl") == [
        {"id": "good-1", "chunks": 1, "first_batch": 0, "last_batch": 0},
        {"id": "good-2", "chunks": 1, "first_batch": 0, "last_batch": 0},
    ]
    assert s3_jsonl(f"jobs/{JOB}/batches/batches.jsonl") == [{"index": 0, "rows": 2, "unique": 1}]
    failures = {f["id"]: f["reason"] for f in s3_jsonl(f"jobs/{JOB}/batches/failures.jsonl")}
    assert failures == {
        "good-1": "duplicate document id",
        "empty": "empty document",
        "line-5": failures["line-5"],
        "typed": "'text' must be a string",
        "nul": "text contains NUL bytes",
        "line-8": "invalid UTF-8 at byte 28",
    }
    assert failures["line-5"].startswith("malformed JSON")
    assert s3_json(f"jobs/{JOB}/batches/manifest.json")["batch_count"] == 1
    item = job_item(JOB)
    assert item is not None and item["status"] == "RUNNING"
    assert item["counts"] == {"documents": 8, "chunks": 2, "embedded": 0, "failed": 6}
    assert item["progress"] == {"batches": 1, "batches_done": 0}


def test_preprocess_plain_text_invalid_utf8_and_utf16(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    queued_job(JOB, "inbox/u/notes.txt", b"caf\xe9 au lait")
    out = run_preprocess(load_handler, lambda_context, event)
    assert out["batch_count"] == 0 and out["batches"] == []
    assert s3_jsonl(f"jobs/{JOB}/batches/failures.jsonl") == [
        {"id": "notes.txt", "reason": "invalid UTF-8 at byte 3"}
    ]
    other = "7c1d2e3f-0000-4000-8000-000000000001"
    queued_job(other, "inbox/u/utf16.txt", codecs.BOM_UTF16_LE + "héllo wörld".encode("utf-16-le"))
    ev = event("preprocess", "preprocess") | {"job_id": other}
    out = load_handler("preprocess").lambda_handler(ev, lambda_context)
    assert out["batch_count"] == 1
    assert s3_jsonl(f"jobs/{other}/batches/batch-00000.jsonl")[0]["text"] == "héllo wörld"


def test_preprocess_selects_distributed_mode_above_the_inline_limit(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("INLINE_MAP_MAX_BATCHES", "2")
    get_settings.cache_clear()
    docs = "\n".join(json.dumps({"id": f"d{i}", "text": f"document number {i}"}) for i in range(5))
    queued_job(JOB, "inbox/u/many.jsonl", docs.encode(), batch_size=1)
    out = run_preprocess(load_handler, lambda_context, event)
    assert out["mode"] == "distributed" and out["batch_count"] == 5 and out["batches"] == []
    assert s3_json(f"jobs/{JOB}/batches/manifest.json")["batch_count"] == 5
    assert len(s3_jsonl(f"jobs/{JOB}/batches/batches.jsonl")) == 5
    # The Distributed Map's ItemReader reads a JSON array of the same batch refs.
    assert out["items_key"] == f"jobs/{JOB}/batches/items.json"
    items = s3_json(out["items_key"])
    assert [i["index"] for i in items] == [0, 1, 2, 3, 4]
    assert out["max_concurrency"] == 8


# --- deliver ----------------------------------------------------------------------------------


def prepared_job(
    load_handler: Any, lambda_context: Any, event: Any, job_id: str = JOB
) -> dict[str, Any]:
    """Given: a preprocessed job with 2 batches (3 documents) and one rejected document."""
    docs = [
        {"id": "a", "text": "alpha beta gamma"},
        {"id": "b", "text": "delta epsilon"},
        {"id": "c", "text": "zeta eta theta"},
        {"id": "bad", "text": "\u0000"},
    ]
    data = "\n".join(json.dumps(d) for d in docs).encode()
    queued_job(job_id, "inbox/u/docs.jsonl", data, batch_size=2)
    result: dict[str, Any] = load_handler("preprocess").lambda_handler(
        event("preprocess", "preprocess") | {"job_id": job_id}, lambda_context
    )
    return result


def test_deliver_success_writes_results_and_is_idempotent(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    pre = prepared_job(load_handler, lambda_context, event)
    for ref in pre["batches"]:
        fake_endpoint_run(ref["inputs_uri"], ref["outputs_uri"])
    deliver = load_handler("deliver")
    out = deliver.lambda_handler(event("deliver", "deliver"), lambda_context)
    # one doc was rejected in preprocess: PARTIAL, naming it
    assert out["status"] == "PARTIAL"
    assert out["counts"] == {"documents": 4, "chunks": 3, "embedded": 3, "failed": 1}
    manifest = s3_json(f"jobs/{JOB}/result/manifest.json")
    assert manifest["dims"] == 8 and manifest["shards"] == {"count": 2, "rows": 3}
    assert s3_jsonl(f"jobs/{JOB}/result/documents.jsonl") == [
        {"id": "a", "chunks": 1, "status": "SUCCEEDED"},
        {"id": "b", "chunks": 1, "status": "SUCCEEDED"},
        {"id": "c", "chunks": 1, "status": "SUCCEEDED"},
        {"id": "bad", "chunks": 0, "status": "FAILED"},
    ]
    assert s3_jsonl(f"jobs/{JOB}/result/failures.jsonl") == [
        {"id": "bad", "reason": "text contains NUL bytes"}
    ]
    vectors = result_rows(JOB)
    matrix = result_matrix(JOB)
    assert matrix.shape == (3, 8) and matrix.dtype == np.float32
    assert [v["chunk_id"] for v in vectors] == ["a#0", "b#0", "c#0"]
    np.testing.assert_allclose(
        matrix, np.array([v["embedding"] for v in vectors], dtype=np.float32)
    )
    # c is row 0 of batch 1: the fake endpoint puts the row index in column 1
    assert vectors[2]["embedding"][1] == 0.0 and vectors[1]["embedding"][1] == 1.0
    item = job_item(JOB)
    assert item is not None and item["status"] == "PARTIAL" and item["notified_at"]
    assert item["failed_documents"] == [{"id": "bad", "reason": "text contains NUL bytes"}]

    # When deliver runs again: same result, same files, no double counting
    before = {
        k: boto3.client("s3").get_object(Bucket=BUCKET, Key=k)["Body"].read()
        for k in s3_keys(f"jobs/{JOB}/result/")
    }
    again = deliver.lambda_handler(event("deliver", "deliver"), lambda_context)
    after = {
        k: boto3.client("s3").get_object(Bucket=BUCKET, Key=k)["Body"].read()
        for k in s3_keys(f"jobs/{JOB}/result/")
    }
    assert again == out and before == after
    assert job_item(JOB) == item


def test_deliver_failed_batch_fails_its_documents_with_the_reason(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    failed_batch = event("deliver", "deliver_batch_failed")
    job = failed_batch["job_id"]
    pre = prepared_job(load_handler, lambda_context, event, job)
    fake_endpoint_run(pre["batches"][0]["inputs_uri"], pre["batches"][0]["outputs_uri"])
    out = load_handler("deliver").lambda_handler(failed_batch, lambda_context)
    assert out["status"] == "PARTIAL"
    assert out["counts"] == {"documents": 4, "chunks": 3, "embedded": 2, "failed": 2}
    manifest = s3_json(f"jobs/{job}/result/manifest.json")
    failed = {f["id"]: f["reason"] for f in s3_jsonl(f"jobs/{job}/result/failures.jsonl")}
    assert set(failed) == {"bad", "c"}
    assert "ModelErrorException" in failed["c"] and "CUDA out of memory" in failed["c"]
    assert manifest["failed_batches"][0]["index"] == 1
    # the failed batch left its failure record, for a re-run and for the retry route
    assert s3_json(f"jobs/{job}/batches/failed/batch-00001.json")["reason"] == failed["c"]


def test_deliver_wrong_row_count_is_a_failed_batch(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    from tandem_common.text.npy import encode_rows

    pre = prepared_job(load_handler, lambda_context, event)
    fake_endpoint_run(pre["batches"][0]["inputs_uri"], pre["batches"][0]["outputs_uri"])
    put(f"jobs/{JOB}/outputs/batch-00001.npy", encode_rows([[1.0] * 8, [2.0] * 8], 8))
    out = load_handler("deliver").lambda_handler(event("deliver", "deliver"), lambda_context)
    assert out["counts"]["embedded"] == 2 and out["status"] == "PARTIAL"
    reasons = {f["id"]: f["reason"] for f in s3_jsonl(f"jobs/{JOB}/result/failures.jsonl")}
    assert reasons["c"] == "batch output has 2x8, expected 1 rows"


def test_collect_writes_the_batch_shard_and_counts_progress(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    pre = prepared_job(load_handler, lambda_context, event)
    first, second = pre["batches"]
    fake_endpoint_run(first["inputs_uri"], first["outputs_uri"])
    collect = load_handler("collect")
    request = {"inputs_uri": first["inputs_uri"], "outputs_uri": first["outputs_uri"]}
    out = collect.lambda_handler({"job_id": JOB, "index": 0, "request": request}, lambda_context)
    assert out == {"index": 0, "ok": True, "rows": 2, "reason": None}
    rows = s3_jsonl(f"jobs/{JOB}/result/shards/vectors-00000.jsonl")
    assert [r["chunk_id"] for r in rows] == ["a#0", "b#0"] and len(rows[0]["embedding"]) == 8
    assert job_item(JOB)["progress"] == {"batches": 2, "batches_done": 1}
    # the endpoint call of batch 1 failed: its failure record, with the reason
    error = {"Error": "SageMakerRuntime.ModelErrorException", "Cause": "Received client error"}
    request = {"inputs_uri": second["inputs_uri"], "outputs_uri": second["outputs_uri"]}
    failed = collect.lambda_handler(
        {"job_id": JOB, "index": 1, "request": request, "attempt": 0, "error": error},
        lambda_context,
    )
    assert failed["ok"] is False
    assert failed["reason"] == (
        "batch failed: SageMakerRuntime.ModelErrorException: Received client error"
    )
    assert s3_json(f"jobs/{JOB}/batches/failed/batch-00001.json") == {
        "index": 1,
        "reason": failed["reason"],
    }
    # a repeat (a retried step) writes nothing new
    before = {k: s3_bytes(k) for k in s3_keys(f"jobs/{JOB}/result/")}
    collect.lambda_handler({"job_id": JOB, "index": 0, "request": request}, lambda_context)
    assert {k: s3_bytes(k) for k in s3_keys(f"jobs/{JOB}/result/")} == before


def test_deliver_takes_a_failed_documents_rows_out_of_its_other_shards(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    # "long" has 3 chunks: one in batch 0 (beside "a"), two in batch 1, whose call fails
    words = " ".join(f"word{i}" for i in range(40))
    docs = [{"id": "a", "text": "alpha beta"}, {"id": "long", "text": words}]
    data = "\n".join(json.dumps(d) for d in docs).encode()
    queued_job(JOB, "inbox/u/docs.jsonl", data, batch_size=2, chunk_tokens=32, chunk_overlap=0)
    pre = run_preprocess(load_handler, lambda_context, event)
    assert pre["batch_count"] == 2
    assert s3_jsonl(f"jobs/{JOB}/batches/documents.jsonl")[1] == {
        "id": "long",
        "chunks": 3,
        "first_batch": 0,
        "last_batch": 1,
    }
    fake_endpoint_run(pre["batches"][0]["inputs_uri"], pre["batches"][0]["outputs_uri"])
    error = {"Error": "SageMakerRuntime.ModelErrorException", "Cause": "Received client error"}
    out = load_handler("deliver").lambda_handler(
        {"job_id": JOB, "batch_results": [{"index": 1, "ok": False, "error": error}]},
        lambda_context,
    )
    # all or nothing: "long" fails whole, and its chunk left batch 0's shard
    assert out["status"] == "PARTIAL"
    assert out["counts"] == {"documents": 2, "chunks": 4, "embedded": 1, "failed": 1}
    assert [r["chunk_id"] for r in result_rows(JOB)] == ["a#0"]
    assert result_matrix(JOB).shape == (1, 8)
    assert s3_jsonl(f"jobs/{JOB}/result/shards.jsonl")[0]["rows"] == 1
    (failure,) = s3_jsonl(f"jobs/{JOB}/result/failures.jsonl")
    assert failure["id"] == "long" and failure["reason"].startswith("batch failed: ")


def test_job_without_valid_documents_ends_failed_listing_every_document(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    queued_job(JOB, "inbox/u/empty.txt", b"   \n ")
    pre = run_preprocess(load_handler, lambda_context, event)
    assert pre["batch_count"] == 0
    out = load_handler("deliver").lambda_handler(
        {"job_id": JOB, "batch_results": []}, lambda_context
    )
    assert out["status"] == "FAILED"
    item = job_item(JOB)
    assert item is not None and item["status"] == "FAILED" and item["error"]["code"] == "no_vectors"
    assert item["failed_documents"] == [{"id": "empty.txt", "reason": "empty document"}]


def test_deliver_queues_the_webhook_and_a_failed_attempt_does_not_fail_the_job(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any, monkeypatch: Any
) -> None:
    from http.server import BaseHTTPRequestHandler

    from standardwebhooks import Webhook

    from tandem.local.http_server import BackgroundHttpServer

    # Given a receiver (on 127.0.0.1, allowed as in the local cloud) that verifies with the
    # standardwebhooks library and answers 500, and the webhook queue
    secret = "whsec_" + "c2lnbmluZy1rZXktb2YtdGhlLXRlc3QtcmVjZWl2ZXI="
    received: list[Any] = []

    def handle(request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers["content-length"]))
        received.append(Webhook(secret).verify(body, dict(request.headers.items())))
        request.send_response(500)
        request.send_header("content-length", "0")
        request.end_headers()

    server = BackgroundHttpServer(handle, name="receiver").start()
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="tandem-WebhookQueue")["QueueUrl"]
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", queue_url)
    monkeypatch.setenv("ALLOW_PRIVATE_WEBHOOKS", "true")
    get_settings.cache_clear()
    opts = {"webhook_url": f"{server.url}/hook", "webhook_secret": secret, "batch_size": 2}
    put("inbox/u/docs.jsonl", json.dumps({"id": "a", "text": "alpha"}).encode())
    from tandem_common.usecases.intake import JobIntake

    JobIntake(get_settings()).submit(
        JOB,
        JobCreate(
            source=Source(s3_uri=f"s3://{BUCKET}/inbox/u/docs.jsonl"), options=JobOptions(**opts)
        ),
        "s3",
    )
    pre = run_preprocess(load_handler, lambda_context, event)
    fake_endpoint_run(pre["batches"][0]["inputs_uri"], pre["batches"][0]["outputs_uri"])
    # When deliver finishes the job
    out = load_handler("deliver").lambda_handler(
        {"job_id": JOB, "batch_results": []}, lambda_context
    )
    # Then the job succeeded, its webhook is pending and attempt 1 is on the queue
    assert out["status"] == "SUCCEEDED"
    item = job_item(JOB)
    assert item is not None and item["webhook"]["state"] == "pending"
    (message,) = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    assert json.loads(message["Body"]) == {"job_id": JOB, "attempt": 1, "not_before": 0}
    # When the webhook function runs that attempt and the receiver answers 500
    record = {**event("webhook", "sqs_attempt")["Records"][0], "body": message["Body"]}
    result = load_handler("webhook").lambda_handler({"Records": [record]}, lambda_context)
    server.close()
    # Then the receiver verified the signed body, the job is still SUCCEEDED, the webhook
    # pending with attempt 2 scheduled
    assert result == {"batchItemFailures": []}
    assert received == [
        {
            "type": "job.succeeded",
            "timestamp": item["finished_at"],
            "data": {
                "job_id": JOB,
                "status": "SUCCEEDED",
                "counts": out["counts"],
                "manifest_uri": out["manifest_uri"],
            },
        }
    ]
    item = job_item(JOB)
    assert item is not None and item["status"] == "SUCCEEDED"
    webhook = item["webhook"]
    assert (webhook["state"], webhook["attempts"], webhook["last_status"]) == ("pending", 1, 500)
    assert webhook["last_error"] == "HTTP 500" and webhook["queued_attempt"] == 2


# --- fail -------------------------------------------------------------------------------------


def test_fail_marks_failed_with_reason_keeping_counts(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    prepared_job(load_handler, lambda_context, event)
    out = load_handler("fail").lambda_handler(event("fail", "fail"), lambda_context)
    assert out == {"job_id": JOB, "status": "FAILED"}
    item = job_item(JOB)
    assert item is not None and item["status"] == "FAILED"
    assert item["error"] == {
        "code": "States.TaskFailed",
        "message": f"input object not found: s3://{BUCKET}/inbox/upload-1/docs.jsonl",
    }
    assert item["counts"]["documents"] == 4 and item["counts"]["chunks"] == 3


def test_fail_never_overwrites_a_finished_job(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any
) -> None:
    pre = prepared_job(load_handler, lambda_context, event)
    for ref in pre["batches"]:
        fake_endpoint_run(ref["inputs_uri"], ref["outputs_uri"])
    load_handler("deliver").lambda_handler(event("deliver", "deliver"), lambda_context)
    out = load_handler("fail").lambda_handler(event("fail", "fail_timeout"), lambda_context)
    assert out == {"job_id": JOB, "status": "PARTIAL"}
    item = job_item(JOB)
    assert item is not None and item["status"] == "PARTIAL" and item["error"] is None


def test_job_store_transitions(cloud: None) -> None:
    from tandem_common.errors import InvalidTransition
    from tandem_common.models import Counts, ErrorInfo

    put("inbox/u/x.txt", b"x")
    from tandem_common.usecases.intake import JobIntake

    JobIntake(get_settings()).submit(
        JOB, JobCreate(source=Source(s3_uri=f"s3://{BUCKET}/inbox/u/x.txt")), "s3"
    )
    store = JobStore(JOBS_TABLE)
    with pytest.raises(InvalidTransition):
        store.finish(JOB, "SUCCEEDED", Counts(), f"s3://{BUCKET}/m", [])  # QUEUED→SUCCEEDED
    store.mark_running(JOB)
    store.mark_running(JOB)  # retry of preprocess is fine
    job, changed = store.finish(JOB, "SUCCEEDED", Counts(documents=1), f"s3://{BUCKET}/m", [])
    assert changed and job.status == "SUCCEEDED"
    job, changed = store.finish(JOB, "SUCCEEDED", Counts(documents=9), f"s3://{BUCKET}/m", [])
    assert not changed and job.counts.documents == 1
    with pytest.raises(InvalidTransition):
        store.finish(JOB, "PARTIAL", Counts(), f"s3://{BUCKET}/m", [])
    with pytest.raises(InvalidTransition):
        store.mark_running(JOB)
    job, changed = store.mark_failed(JOB, ErrorInfo(code="x", message="y"))
    assert not changed and job.status == "SUCCEEDED"
