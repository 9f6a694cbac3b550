"""api handler through its events/api files, against moto."""

from __future__ import annotations

import json
import socket
from typing import Any

import boto3
import pytest
from conftest import BUCKET, JOBS_TABLE, job_item, s3_jsonl
from tandem_common.contracts import deterministic_job_id

SECRET = "whsec_" + "eA" * 16  # a Standard Webhooks secret (24 bytes)


def test_create_inline_job_writes_input_queues_job_and_starts_execution(
    api: Any, event: Any
) -> None:
    # Given an inline job request with an Idempotency-Key
    # When it is posted
    status, body = api(event("api", "create_job_inline"))
    # Then it is accepted with the deterministic id, input written, job QUEUED, execution started
    job_id = deterministic_job_id("api", "demo-key-1")
    assert status == 202
    assert body == {"job_id": job_id, "status": "QUEUED", "links": {"self": f"/v1/jobs/{job_id}"}}
    rows = s3_jsonl(f"jobs/{job_id}/input/documents.jsonl")
    assert [r["id"] for r in rows] == ["doc-1", "doc-2"]
    item = job_item(job_id)
    assert item is not None
    assert item["status"] == "QUEUED" and item["source"] == "api"
    assert item["options"] == {"chunk_tokens": 64, "chunk_overlap": 8, "batch_size": 16}
    executions = boto3.client("stepfunctions").list_executions(
        stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:tandem-pipeline"
    )["executions"]
    assert [e["name"] for e in executions] == [job_id]
    assert item["execution_arn"] == executions[0]["executionArn"]


def test_idempotency_key_repeat_returns_same_job_and_one_execution(api: Any, event: Any) -> None:
    first = api(event("api", "create_job_inline"))
    second = api(event("api", "create_job_inline"))
    assert first == second
    executions = boto3.client("stepfunctions").list_executions(
        stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:tandem-pipeline"
    )["executions"]
    assert len(executions) == 1


def test_create_job_from_source_in_data_bucket(api: Any, event: Any) -> None:
    status, body = api(event("api", "create_job_source"))
    assert status == 202
    item = job_item(body["job_id"])
    assert item is not None and item["input_uri"] == f"s3://{BUCKET}/inbox/upload-1/docs.jsonl"
    assert item["options"] == {"chunk_tokens": 256, "chunk_overlap": 32, "batch_size": 64}


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("create_job_malformed_json", 400, "malformed_json"),
        ("create_job_missing_field", 422, "validation_error"),
        ("create_job_wrong_types", 422, "validation_error"),
        ("create_job_foreign_bucket", 422, "invalid_request"),
        ("create_job_private_webhook", 422, "webhook_refused"),
        ("create_job_http_webhook", 422, "webhook_refused"),
        ("get_job_unknown", 404, "not_found"),
        ("get_job_not_uuid", 404, "not_found"),
        ("unknown_route", 404, "not_found"),
        ("create_upload_traversal", 422, "invalid_request"),
    ],
)
def test_bad_requests_get_a_clear_error(
    api: Any, event: Any, name: str, status: int, code: str
) -> None:
    got_status, body = api(event("api", name))
    assert got_status == status
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_bad_job_requests_leave_no_state(api: Any, event: Any) -> None:
    for name in (
        "create_job_malformed_json",
        "create_job_private_webhook",
        "create_job_foreign_bucket",
    ):
        api(event("api", name))
    assert boto3.client("dynamodb").scan(TableName=JOBS_TABLE)["Count"] == 0
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET)


def test_oversized_job_body_is_413(api: Any, event: Any) -> None:
    e = event("api", "create_job_inline")
    e["body"] = json.dumps({"documents": [{"id": "big", "text": "x" * (6 * 1024 * 1024)}]})
    status, body = api(e)
    assert status == 413 and body["error"]["code"] == "payload_too_large"


def _get(event: Any, job_id: str) -> dict[str, Any]:
    ev = event("api", "get_job")
    ev["rawPath"] = ev["requestContext"]["http"]["path"] = f"/v1/jobs/{job_id}"
    return ev


def test_get_job_hides_secret_and_lists_downloads_when_finished(
    api: Any, event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tandem_common.adapters.jobs import JobStore
    from tandem_common.models import Counts

    # Given a job with a webhook to a public host (DNS answered by a stub)
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("93.184.215.14", 443))]
    )
    e = event("api", "create_job_inline")
    e["body"] = json.dumps(
        {
            "documents": [{"id": "a", "text": "hello"}],
            "options": {"webhook_url": "https://hooks.example.com/x", "webhook_secret": SECRET},
        }
    )
    _, accepted = api(e)
    job_id = accepted["job_id"]
    # When it is read while queued
    status, body = api(_get(event, job_id))
    # Then there are no downloads and never the secret
    assert status == 200 and body["status"] == "QUEUED" and body["downloads"] is None
    assert "webhook_secret" not in json.dumps(body) and SECRET not in json.dumps(body)

    # When it has finished
    store = JobStore(JOBS_TABLE)
    store.mark_running(job_id)
    manifest = f"s3://{BUCKET}/jobs/{job_id}/result/manifest.json"
    store.finish(job_id, "SUCCEEDED", Counts(documents=1, chunks=1, embedded=1), manifest, [])
    status, body = api(_get(event, job_id))
    # Then counts, timings and presigned downloads are there
    assert status == 200 and body["status"] == "SUCCEEDED"
    assert body["counts"] == {"documents": 1, "chunks": 1, "embedded": 1, "failed": 0}
    assert body["manifest_uri"] == manifest
    assert f"jobs/{job_id}/result/shards.jsonl" in body["downloads"]["shards"]
    assert f"jobs/{job_id}/result/documents.jsonl" in body["downloads"]["documents"]
    assert "X-Amz-Signature" in body["downloads"]["manifest"]
    assert body["timings"]["duration_s"] is not None


def test_upload_gives_presigned_put_into_inbox(api: Any, event: Any) -> None:
    status, body = api(event("api", "create_upload"))
    assert status == 201
    assert body["method"] == "PUT"
    assert body["s3_uri"].startswith(f"s3://{BUCKET}/inbox/") and body["s3_uri"].endswith(
        "/docs.jsonl"
    )
    assert "X-Amz-Signature" in body["upload_url"]


def test_openapi_and_swagger(api: Any, event: Any) -> None:
    status, spec = api(event("api", "openapi"))
    assert status == 200
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/uploads", "/v1/embeddings"} <= set(spec["paths"])
    status, html = api(event("api", "docs"))
    assert status == 200 and "swagger" in str(html).lower()
