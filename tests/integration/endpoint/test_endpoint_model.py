"""The numpy backend through the real HTTP server against the committed sentence-transformers
reference (tests/fixtures/reference), and the claim-check path against a moto S3 server."""

from __future__ import annotations

import base64
import io
import json
import os

import boto3
import httpx
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration

REFERENCE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "reference")


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    with open(os.path.join(REFERENCE, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)
    embeddings = np.load(os.path.join(REFERENCE, "embeddings.npy"))
    assert len(texts) >= 110 and embeddings.shape == (len(texts), 384)
    return texts, embeddings


def embed(url: str, texts: list[str], encoding: str = "float") -> np.ndarray:
    rows = []
    for start in range(0, len(texts), 40):
        r = httpx.post(
            f"{url}/invocations",
            json={"inputs": texts[start : start + 40], "encoding": encoding},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["dims"] == 384 and body["model"] == "all-MiniLM-L6-v2"
        if encoding == "float":
            rows.extend(body["outputs"])
        else:
            dtype = "<f2" if encoding == "base64-f16" else "<f4"
            rows.extend(np.frombuffer(base64.b64decode(s), dtype=dtype) for s in body["outputs"])
    return np.asarray(rows, dtype=np.float32)


def test_every_reference_text_matches_sentence_transformers(endpoint, reference) -> None:
    texts, expected = reference
    got = embed(endpoint.url, texts)
    cosine = (got * expected).sum(axis=1) / np.linalg.norm(got, axis=1)
    worst = int(np.argmin(cosine))
    assert cosine.min() >= 0.999, f"text {worst} {texts[worst][:40]!r}: cosine {cosine[worst]}"
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_base64_f16_is_within_half_precision_tolerance(endpoint, reference) -> None:
    texts, expected = reference
    got = embed(endpoint.url, texts, encoding="base64-f16")
    cosine = (got * expected).sum(axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() >= 0.999
    assert np.abs(got - expected).max() < 2e-3


def put_jsonl(s3, bucket: str, key: str, texts: list[str]) -> None:
    lines = [json.dumps({"chunk_id": f"c{i}", "text": t}) for i, t in enumerate(texts)]
    s3.put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode())


def test_claim_check_reads_jsonl_and_writes_npy_in_input_order(endpoint, s3, reference) -> None:
    texts, expected = reference
    s3.create_bucket(Bucket="tandem-data")
    put_jsonl(s3, "tandem-data", "jobs/j1/batches/batch-00000.jsonl", texts[:64])
    r = httpx.post(
        f"{endpoint.url}/invocations",
        json={
            "inputs_uri": "s3://tandem-data/jobs/j1/batches/batch-00000.jsonl",
            "outputs_uri": "s3://tandem-data/jobs/j1/outputs/batch-00000.npy",
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "count": 64,
        "dims": 384,
        "model": "all-MiniLM-L6-v2",
        "outputs_uri": "s3://tandem-data/jobs/j1/outputs/batch-00000.npy",
    }
    obj = s3.get_object(Bucket="tandem-data", Key="jobs/j1/outputs/batch-00000.npy")
    vectors = np.load(io.BytesIO(obj["Body"].read()))
    assert vectors.dtype == np.float32 and vectors.shape == (64, 384)
    assert ((vectors * expected[:64]).sum(axis=1)).min() >= 0.999


def test_claim_check_missing_input_is_400_and_malformed_fault_writes_wrong_rows(
    endpoint, s3
) -> None:
    s3.create_bucket(Bucket="tandem-faults")
    missing = {
        "inputs_uri": "s3://tandem-faults/nope.jsonl",
        "outputs_uri": "s3://tandem-faults/o.npy",
    }
    r = httpx.post(f"{endpoint.url}/invocations", json=missing, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "input_not_found"

    put_jsonl(s3, "tandem-faults", "in.jsonl", ["one", "two", "three"])
    httpx.post(f"{endpoint.url}/faults", json={"malformed": 1})
    body = {"inputs_uri": "s3://tandem-faults/in.jsonl", "outputs_uri": "s3://tandem-faults/o.npy"}
    r = httpx.post(f"{endpoint.url}/invocations", json=body, timeout=30)
    assert r.status_code == 200 and r.json()["count"] == 3
    obj = s3.get_object(Bucket="tandem-faults", Key="o.npy")
    assert np.load(io.BytesIO(obj["Body"].read())).shape[0] != 3


def test_boto3_runtime_client_against_the_real_model(endpoint) -> None:
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=endpoint.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    response = client.invoke_endpoint(
        EndpointName="tandem", Body=json.dumps({"inputs": ["hi"]}), ContentType="application/json"
    )
    assert len(json.loads(response["Body"].read())["outputs"][0]) == 384
    with pytest.raises(ClientError) as caught:
        client.invoke_endpoint(EndpointName="tandem", Body=b'{"inputs": []}')
    assert caught.value.response["Error"]["Code"] == "ModelError"


@pytest.mark.parametrize(
    ("block_tokens", "parallel_min_tokens"),
    [(1024, 512), (300, 10**9), (300, 1)],
    ids=["defaults", "many-blocks-serial", "many-blocks-parallel"],
)
def test_blocked_forward_matches_one_text_at_a_time(
    reference, block_tokens: int, parallel_min_tokens: int
) -> None:
    """A batch is split into blocks (and across threads); every row must still be its own text's
    vector, in input order, whatever the split."""
    from tandem_endpoint.__main__ import default_model_dir
    from tandem_endpoint.backends.numpy_backend import NumpyBertBackend

    texts, expected = reference
    backend = NumpyBertBackend(default_model_dir())
    backend.block_tokens = block_tokens
    backend.parallel_min_tokens = parallel_min_tokens
    order = list(range(0, len(texts), 2)) + list(range(1, len(texts), 2))  # mix the lengths
    batched = backend.encode([texts[i] for i in order])
    single = np.vstack([backend.encode([texts[i]]) for i in order])
    np.testing.assert_allclose(batched, single, atol=2e-5)
    assert ((batched * expected[order]).sum(axis=1)).min() >= 0.999


def test_claim_check_rows_may_hold_u2028_and_non_utf8_input_is_400(endpoint, s3) -> None:
    """JSON allows U+2028/U+2029/U+0085 unescaped in strings: a row holding one is one row."""
    s3.create_bucket(Bucket="tandem-seps")
    texts = ["line\u2028separator", "para\u2029graph", "next\x85line", "plain"]
    lines = [json.dumps({"text": t}, ensure_ascii=False) for t in texts]
    s3.put_object(Bucket="tandem-seps", Key="in.jsonl", Body="\r\n".join(lines).encode())
    body = {"inputs_uri": "s3://tandem-seps/in.jsonl", "outputs_uri": "s3://tandem-seps/o.npy"}
    r = httpx.post(f"{endpoint.url}/invocations", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 4
    vectors = np.load(io.BytesIO(s3.get_object(Bucket="tandem-seps", Key="o.npy")["Body"].read()))
    np.testing.assert_allclose(vectors, embed(endpoint.url, texts), atol=1e-5)

    s3.put_object(Bucket="tandem-seps", Key="bad.jsonl", Body=b'{"text": "\xff"}')
    body["inputs_uri"] = "s3://tandem-seps/bad.jsonl"
    r = httpx.post(f"{endpoint.url}/invocations", json=body, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input_file"


def test_fake_fast_claim_check_at_orchestration_scale(fake_endpoint, s3) -> None:
    """Issue 12: 100,000 chunks in one claim-check request; same text, same vector."""
    s3.create_bucket(Bucket="tandem-scale")
    texts = [f"chunk number {i % 50_000}" for i in range(100_000)]
    put_jsonl(s3, "tandem-scale", "in.jsonl", texts)
    body = {"inputs_uri": "s3://tandem-scale/in.jsonl", "outputs_uri": "s3://tandem-scale/o.npy"}
    r = httpx.post(f"{fake_endpoint.url}/invocations", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 100_000 and "fake" in r.json()["model"]
    obj = s3.get_object(Bucket="tandem-scale", Key="o.npy")
    vectors = np.load(io.BytesIO(obj["Body"].read()))
    assert vectors.shape == (100_000, 384) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors[:50_000], vectors[50_000:])
    assert len(np.unique(vectors[:50_000], axis=0)) == 50_000
    np.testing.assert_allclose(np.linalg.norm(vectors[:1000], axis=1), 1.0, atol=1e-5)
    stages = httpx.get(f"{fake_endpoint.url}/metrics").json()["stages"]
    assert "tokenize" not in stages and stages["forward"]["sentences"] == 100_000
