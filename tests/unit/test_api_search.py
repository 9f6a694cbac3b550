"""`POST /v1/search` and `DELETE /v1/documents/{id}` through the api handler and its events/api
files: moto's S3 Vectors (with moto_compat's exact QueryVectors) and a stand-in sagemaker-runtime
(`FakeRuntime`, a fake model). The real model, through the local cloud:
tests/integration/local_cloud/test_local_search.py.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from conftest import DOCS_TABLE, VECTOR_DIMS, VECTOR_INDEX_ARN
from tandem_common.adapters import aws
from tandem_common.models import SearchFilter
from tandem_common.usecases.search import index_filter
from test_api_openai import FakeRuntime, fake_vector

JOB = "00000000-0000-4000-8000-00000000000a"


@pytest.fixture
def runtime() -> FakeRuntime:
    fake = FakeRuntime(dims=VECTOR_DIMS)
    aws.set_client("sagemaker-runtime", fake)
    return fake


def index_docs(client: Any, docs: dict[str, list[str]], job_id: str = JOB) -> None:
    """Put documents' chunks as collect would: key, metadata, the fake model's vector."""
    vectors = [
        {
            "key": f"{doc_id}#{i}",
            "data": {"float32": fake_vector(text, VECTOR_DIMS)},
            "metadata": {"document_id": doc_id, "job_id": job_id, "chunk_index": i, "text": text},
        }
        for doc_id, texts in docs.items()
        for i, text in enumerate(texts)
    ]
    client.put_vectors(indexArn=VECTOR_INDEX_ARN, vectors=vectors)
    ddb = boto3.client("dynamodb")
    for doc_id, texts in docs.items():
        ddb.put_item(
            TableName=DOCS_TABLE,
            Item={
                "document_id": {"S": doc_id},
                "chunks": {"N": str(len(texts))},
                "job_id": {"S": job_id},
            },
        )


def search_event(event: Any, body: Any) -> dict[str, Any]:
    e: dict[str, Any] = event("api", "search")
    e["body"] = json.dumps(body)
    return e


def delete_event(event: Any, encoded_id: str) -> dict[str, Any]:
    e: dict[str, Any] = event("api", "delete_document")
    e["rawPath"] = e["requestContext"]["http"]["path"] = f"/v1/documents/{encoded_id}"
    return e


def test_search_embeds_the_normalised_query_and_answers_nearest_first(
    api: Any, event: Any, vector_index: Any, runtime: FakeRuntime
) -> None:
    # the fake model's vector depends on the text's length only: "abcd" matches "wxyz" exactly
    index_docs(vector_index, {"near": ["wxyz"], "far": ["a much longer chunk of text"]})
    status, body = api(search_event(event, {"query": " ab\u200bcd ", "top_k": 2}))
    assert status == 200, body
    assert json.loads(runtime.calls[0]["Body"])["inputs"] == ["abcd"]  # as preprocess normalises
    assert body["model"] == "all-MiniLM-L6-v2"
    near, far = body["results"]
    assert (near["document_id"], near["chunk_index"], near["text"]) == ("near", 0, "wxyz")
    assert near["score"] == pytest.approx(1.0, abs=1e-6) and near["job_id"] == JOB
    assert far["document_id"] == "far" and far["score"] < near["score"]


def test_search_filters_by_document_and_job(
    api: Any, event: Any, vector_index: Any, runtime: FakeRuntime
) -> None:
    index_docs(vector_index, {"a": ["wxyz"], "b": ["wxyz"], "c": ["wxyz"]})
    index_docs(vector_index, {"d": ["wxyz"]}, job_id="other-job")
    body = {"query": "abcd", "top_k": 10, "filter": {"document_id": ["a", "c", "d"]}}
    status, out = api(search_event(event, body))
    assert status == 200 and {r["document_id"] for r in out["results"]} == {"a", "c", "d"}
    body["filter"] = {"document_id": ["a", "c", "d"], "job_id": JOB}
    _, out = api(search_event(event, body))
    assert {r["document_id"] for r in out["results"]} == {"a", "c"}
    body["filter"] = {"job_id": "other-job"}
    _, out = api(search_event(event, body))
    assert [r["document_id"] for r in out["results"]] == ["d"]


def test_the_api_filter_becomes_an_s3_vectors_filter() -> None:
    assert index_filter(None) is None
    assert index_filter(SearchFilter()) is None
    assert index_filter(SearchFilter(document_id="a")) == {"document_id": "a"}
    assert index_filter(SearchFilter(document_id=["a", "b", "a"], job_id="j")) == {
        "$and": [{"document_id": {"$in": ["a", "b"]}}, {"job_id": "j"}]
    }


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"query": "\u200b \u200b"}, 422, "invalid_request"),  # empty after normalisation
        ({"query": ""}, 422, "validation_error"),
        ({"query": "x", "top_k": 0}, 422, "validation_error"),
        ({"query": "x", "top_k": 101}, 422, "validation_error"),
        ({"query": "x", "filter": {"text": "secret"}}, 422, "validation_error"),  # not filterable
        ({"query": "x", "filter": {"document_id": []}}, 422, "validation_error"),
        ({"query": "x", "unknown": 1}, 422, "validation_error"),
    ],
)
def test_bad_searches_are_4xx_and_reach_no_endpoint(
    api: Any,
    event: Any,
    vector_index: Any,
    runtime: FakeRuntime,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    got, out = api(search_event(event, body))
    assert (got, out["error"]["code"]) == (status, code), out
    assert runtime.calls == []


def test_a_model_of_another_size_is_a_502_naming_both(
    api: Any, event: Any, vector_index: Any
) -> None:
    aws.set_client("sagemaker-runtime", FakeRuntime(dims=384))
    status, body = api(search_event(event, {"query": "hello"}))
    assert status == 502 and body["error"]["code"] == "endpoint_error"
    assert "384-dimensional" in body["error"]["message"]
    assert "8-dimensional" in body["error"]["message"]


def test_delete_removes_every_chunk_and_a_repeat_finds_nothing(
    api: Any, event: Any, vector_index: Any
) -> None:
    index_docs(vector_index, {"notes/2026 #1": ["a", "b", "c"], "keep": ["d"]})
    encoded = "notes%2F2026%20%231"  # "/", " " and "#" percent-encoded, as the CLI sends it
    status, body = api(delete_event(event, encoded))
    assert status == 200
    assert body == {"document_id": "notes/2026 #1", "found": True, "vectors": 3}
    keys = [v["key"] for v in vector_index.list_vectors(indexArn=VECTOR_INDEX_ARN)["vectors"]]
    assert keys == ["keep#0"]
    assert api(delete_event(event, encoded)) == (
        200,
        {"document_id": "notes/2026 #1", "found": False, "vectors": 0},
    )
    too_long = "x" * 300  # no such document can be indexed: no call is made
    assert api(delete_event(event, too_long))[1]["found"] is False


def test_without_an_index_the_routes_answer_501(api: Any, event: Any, runtime: FakeRuntime) -> None:
    status, body = api(search_event(event, {"query": "hello"}))
    assert (status, body["error"]["code"]) == (501, "indexing_disabled")
    assert "VectorIndexing=false" in body["error"]["message"]
    status, body = api(event("api", "delete_document"))
    assert (status, body["error"]["code"]) == (501, "indexing_disabled")
    assert runtime.calls == []


def test_openapi_declares_the_search_routes(api: Any, event: Any) -> None:
    status, spec = api(event("api", "openapi"))
    assert status == 200
    search = spec["paths"]["/v1/search"]["post"]
    assert {"200", "422", "501", "502", "503"} <= set(search["responses"])
    schema = search["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/SearchResponse")
    delete = spec["paths"]["/v1/documents/{document_id}"]["delete"]
    assert {"200", "501"} <= set(delete["responses"])
