"""Hostile input through the real local cloud: nasty documents, huge inputs, nested bodies,
odd S3 keys and traversal file names. Outcomes: a 4xx with a reason, or a terminal job that
lists every document (embedded or failed with a reason); never a 5xx, a lost document or a
write outside `jobs/{job_id}/`.

The CPU endpoint embeds ~40 short sentences/s, so the 10 MB single-line text and the 100k tiny
documents run through the real preprocess function (via the local Lambda service) and are
checked on its output; the full pipeline gets a ~200 KB single-line text instead.
"""

from __future__ import annotations

import importlib.util
import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from tandem_common.adapters.jobs import JobStore, utc_now
from tandem_common.models import ErrorInfo, JobRecord, ResolvedOptions
from tandem_common.text.wordpiece import SPECIAL_TOKENS, count_tokens

pytestmark = pytest.mark.integration

NASTY = Path(__file__).resolve().parents[2] / "fixtures" / "nasty" / "nasty.py"
_spec = importlib.util.spec_from_file_location("nasty_fixtures", NASTY)
assert _spec and _spec.loader
nasty = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nasty)


def _request(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _s3_job_id(cloud: Any, key: str, put: dict[str, Any]) -> str:
    from tandem_common.contracts import s3_job_id

    return s3_job_id(cloud.bucket, key, put.get("VersionId") or put["ETag"].strip('"'))


def _jsonl(cloud: Any, key: str) -> list[dict[str, Any]]:
    body = cloud.client("s3").get_object(Bucket=cloud.bucket, Key=key)["Body"].read()
    return [json.loads(x) for x in body.splitlines() if x.strip()]


def _outcomes(cloud: Any, job_id: str) -> dict[str, str]:
    """document id -> "embedded" | "failed", from the job's result files (reasons required)."""
    out = {r["document_id"]: "embedded" for r in cloud.jobs.result_rows(job_id)}
    for f in _jsonl(cloud, f"jobs/{job_id}/result/failures.jsonl"):
        assert f["reason"], f
        assert f["id"] not in out, f
        out[f["id"]] = "failed"
    return out


def _all_keys(cloud: Any) -> set[str]:
    s3 = cloud.client("s3")
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=cloud.bucket):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


def test_nasty_documents_through_the_pipeline(drained: Any) -> None:
    cloud = drained
    s3 = cloud.client("s3")
    run = uuid.uuid4().hex[:8]
    jobs = {}
    for name, (data, expected) in nasty.nasty_files().items():
        key = f"inbox/nasty-{run}/{name}"
        put = s3.put_object(Bucket=cloud.bucket, Key=key, Body=data)
        jobs[name] = (_s3_job_id(cloud, key, put), expected)
    for name, (job_id, expected) in jobs.items():
        job = cloud.jobs.wait(job_id, timeout=240)
        assert job["status"] in ("SUCCEEDED", "PARTIAL", "FAILED"), (name, job)
        assert _outcomes(cloud, job_id) == expected, name
        want = "SUCCEEDED" if "failed" not in expected.values() else None
        if want:
            assert job["status"] == want, (name, job)
        assert job["counts"]["failed"] == list(expected.values()).count("failed"), (name, job)


def test_api_inline_lone_surrogates_are_a_422_and_nul_fails_the_document(drained: Any) -> None:
    cloud = drained
    body = (
        b'{"documents": ['
        b'{"id": "s", "text": "half a pair \\ud800 here"},'
        b'{"id": "\\udfff", "text": "the id is not UTF-8"}]}'
    )
    status, out = _request(cloud.api_url + "/v1/jobs", body)
    assert status == 422, out
    assert "documents.0.text" in out["error"]["message"]
    assert "documents.1.id" in out["error"]["message"]
    body = (
        b'{"documents": ['
        b'{"id": "n", "text": "nul \\u0000 inside"},'
        b'{"id": "ok", "text": "a normal sentence about tides."}]}'
    )
    status, out = _request(cloud.api_url + "/v1/jobs", body)
    assert status == 202, out
    job = cloud.jobs.wait(out["job_id"])
    assert job["status"] == "PARTIAL", job
    assert _outcomes(cloud, out["job_id"]) == {"n": "failed", "ok": "embedded"}
    assert "NUL" in job["failed_documents"][0]["reason"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/jobs", b"[" * 10_000 + b"]" * 10_000),
        ("/v1/jobs", b'{"documents": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("/v1/jobs", b'{"options": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_000 + b"}"),
        ("/v1/jobs", b'{"documents": [{"id": "a", "text": ' + b"[" * 3_000 + b"]" * 3_000 + b"}]}"),
        ("/v1/embeddings", b'{"input": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
        ("/v1/uploads", b'{"filename": ' + b'{"x": ' * 20_000 + b"0" + b"}" * 20_000 + b"}"),
        ("/v1/jobs", b"[" * 3_000_000),  # unterminated, 3 MB
        ("/v1/jobs", b"[" * 6_000_000 + b"]" * 6_000_000),  # over the size limit
    ],
    ids=[
        "arrays-10k",
        "documents-100k",
        "objects-5k",
        "text-3k",
        "embeddings-50k",
        "uploads-20k",
        "open-3M",
        "huge-12MB",
    ],
)
def test_deeply_nested_json_is_a_4xx(cloud: Any, path: str, body: bytes) -> None:
    status, out = _request(cloud.api_url + path, body)
    assert status in (400, 413, 422), (status, out)
    assert out["error"]["code"] and out["error"]["message"], out


def test_api_refuses_too_many_inline_documents(cloud: Any) -> None:
    docs = [{"id": f"d{i}", "text": "x"} for i in range(10_001)]
    status, out = _request(cloud.api_url + "/v1/jobs", json.dumps({"documents": docs}).encode())
    assert status == 422, out


@pytest.mark.parametrize(
    "filename",
    [
        "../escape.txt",
        "..",
        "a/b.txt",
        "..\\..\\windows.txt",
        "%2e%2e%2fescape.txt",
        "..%2fescape.txt",
        ".hidden",
        "name\x00.txt",
        "ünïcödé.txt",
        "rtl\u202etxt.exe",
        "sp ace.txt",
        "/etc/passwd",
        "x" * 201,
    ],
)
def test_upload_filenames_that_could_escape_are_refused(cloud: Any, filename: str) -> None:
    status, out = _request(
        cloud.api_url + "/v1/uploads", json.dumps({"filename": filename}).encode()
    )
    assert status == 422, (filename, status, out)


def test_upload_ticket_stays_in_the_inbox(cloud: Any) -> None:
    status, out = _request(
        cloud.api_url + "/v1/uploads", json.dumps({"filename": "docs.v2_final-1.jsonl"}).encode()
    )
    assert status == 201, out
    prefix = f"s3://{cloud.bucket}/inbox/"
    assert out["s3_uri"].startswith(prefix) and out["s3_uri"].endswith("/docs.v2_final-1.jsonl")
    assert ".." not in out["s3_uri"]


ODD_KEYS = [
    "inbox/../escape.txt",
    "inbox/../../jobs/not-a-job/result/vectors.txt",
    "inbox/%2e%2e/%2e%2e/encoded.txt",
    "inbox/..%2f..%2fjobs%2fx.txt",
    "inbox/./dot//double-slash.txt",
    "inbox/sp ace/ leading and trailing .txt",
    "inbox/ünïcödé/東京/🙂.txt",
    "inbox/rtl\u202e/evil\u202etxt.exe",
    "inbox/zero\u200bwidth.txt",
]


def test_odd_s3_keys_make_jobs_that_write_only_under_their_prefix(drained: Any) -> None:
    cloud = drained
    s3 = cloud.client("s3")
    before = _all_keys(cloud)
    jobs = {}
    for i, key in enumerate(ODD_KEYS):
        put = s3.put_object(
            Bucket=cloud.bucket, Key=key, Body=f"Odd key document {i}: the river bends.".encode()
        )
        jobs[key] = _s3_job_id(cloud, key, put)
    for key, job_id in jobs.items():
        job = cloud.jobs.wait(job_id)
        assert job["status"] == "SUCCEEDED", (key, job)
        assert job["input_uri"] == f"s3://{cloud.bucket}/{key}", job
        basename = key.rsplit("/", 1)[-1]
        assert _outcomes(cloud, job_id) == {basename: "embedded"}, key
    new = _all_keys(cloud) - before
    prefixes = tuple(f"jobs/{job_id}/" for job_id in jobs.values())
    outside = sorted(k for k in new if k not in ODD_KEYS and not k.startswith(prefixes))
    # other tests' jobs may run concurrently: only keys of *some* job are allowed
    assert [k for k in outside if not k.startswith("jobs/")] == []
    for k in new:
        assert ".." not in k.split("/")[:2] or k in ODD_KEYS, k
    # nothing written to the paths the keys name
    assert not any(k.startswith("jobs/not-a-job/") for k in new)
    assert "escape.txt" not in new


def test_single_line_200kb_through_the_pipeline(drained: Any) -> None:
    cloud = drained
    text = nasty.single_line_text(200_000)
    assert "\n" not in text
    key = f"inbox/big/{uuid.uuid4().hex[:8]}-single-line.txt"
    put = cloud.client("s3").put_object(Bucket=cloud.bucket, Key=key, Body=text.encode())
    job_id = _s3_job_id(cloud, key, put)
    job = cloud.jobs.wait(job_id, timeout=600)
    assert job["status"] == "SUCCEEDED", job
    assert job["counts"]["chunks"] == job["counts"]["embedded"] > 150, job
    rows = cloud.jobs.chunk_rows(job_id)
    assert [r["chunk_index"] for r in rows] == list(range(len(rows)))
    assert _outcomes(cloud, job_id) == {key.rsplit("/", 1)[-1]: "embedded"}


def _preprocess_only(
    cloud: Any, key: str, data: bytes, options: ResolvedOptions
) -> tuple[str, dict[str, Any], float]:
    """Run the real preprocess function (local Lambda service) on a job that has no execution."""
    s3 = cloud.client("s3")
    s3.put_object(Bucket=cloud.bucket, Key=key, Body=data)
    store = JobStore(cloud.jobs_table, client=cloud.client("dynamodb"))
    job_id = str(uuid.uuid4())
    now = utc_now()
    store.create(
        JobRecord(
            job_id=job_id,
            status="QUEUED",
            source="api",
            input_uri=f"s3://{cloud.bucket}/{key}",
            options=options,
            created_at=now,
            updated_at=now,
            expires_at=int(time.time()) + 3600,
        )
    )
    try:
        started = time.monotonic()
        result = cloud.lambda_service.invoke("PreprocessFunction", {"job_id": job_id})
        elapsed = time.monotonic() - started
        assert result.error_type is None, result.payload
        return job_id, result.payload, elapsed
    finally:  # never leave a RUNNING job behind: this job has no execution to finish it
        store.mark_failed(
            job_id, ErrorInfo(code="PreprocessOnlyTest", message="preprocess checked")
        )


def test_ten_megabyte_single_line_preprocesses_within_budget(cloud: Any) -> None:
    text = nasty.single_line_text(10 * 1024 * 1024)
    options = ResolvedOptions(chunk_tokens=256, chunk_overlap=32, batch_size=64)
    job_id, out, elapsed = _preprocess_only(
        cloud, f"staging/hostile/{uuid.uuid4().hex}.txt", text.encode(), options
    )
    rows = cloud.jobs.chunk_rows(job_id)
    assert out["mode"] == "distributed" and out["batch_count"] == -(-len(rows) // 64) > 100, out
    assert [r["chunk_index"] for r in rows] == list(range(len(rows)))
    assert len({r["document_id"] for r in rows}) == 1  # one document, many chunks
    items = json.loads(
        cloud.client("s3").get_object(Bucket=cloud.bucket, Key=out["items_key"])["Body"].read()
    )
    assert len(items) == out["batch_count"]
    # spot-check the batch files: every chunk within the token budget
    for index in (0, out["batch_count"] // 2, out["batch_count"] - 1):
        batch = _jsonl(cloud, f"jobs/{job_id}/batches/batch-{index:05d}.jsonl")
        assert batch and all(count_tokens(r["text"]) + SPECIAL_TOKENS <= 256 for r in batch)
    print(
        f"10 MB single line: {len(rows)} chunks, {out['batch_count']} batches, preprocess {elapsed:.1f} s"
    )


def test_hundred_thousand_tiny_documents_preprocess_and_are_all_accounted(cloud: Any) -> None:
    n = 100_000
    options = ResolvedOptions(chunk_tokens=256, chunk_overlap=32, batch_size=256)
    job_id, out, elapsed = _preprocess_only(
        cloud, f"staging/hostile/{uuid.uuid4().hex}.jsonl", nasty.tiny_documents_jsonl(n), options
    )
    rows = cloud.jobs.chunk_rows(job_id)
    failures = _jsonl(cloud, f"jobs/{job_id}/batches/failures.jsonl")
    assert {r["document_id"] for r in rows} | {f["id"] for f in failures} == {
        f"t{i}" for i in range(n)
    }
    assert failures == [] and len(rows) == n
    assert out["batch_count"] == -(-n // 256) and out["mode"] == "distributed", out
    job = JobStore(cloud.jobs_table, client=cloud.client("dynamodb")).require(job_id)
    assert job.counts.documents == n and job.counts.chunks == n
    print(f"100k tiny documents: {out['batch_count']} batches, preprocess {elapsed:.1f} s")
