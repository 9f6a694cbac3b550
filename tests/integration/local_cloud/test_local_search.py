"""Search through the local cloud, with the real model: every embedded chunk in the S3 Vectors
index (moto, QueryVectors from moto_compat), `POST /v1/search`, `DELETE /v1/documents/{id}`,
`tandem search` / `tandem delete`, and documents that change.

Document ids carry a per-run prefix: the session cloud's index is shared by every test.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from tandem_common.contracts import JobPaths
from tandem_common.text.normalise import normalise_text

from tandem.cli import main
from tandem.client import TandemClient
from tandem.local.inspection import stored_vectors

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "samples" / "search" / "corpus.jsonl"
QUERIES = ROOT / "samples" / "search" / "queries.jsonl"
RUN = uuid.uuid4().hex[:8]


def _request(url: str, body: Any = None, method: str = "POST") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _ingest(cloud: Any, docs: list[dict[str, str]], **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"documents": docs}
    if options:
        body["options"] = options
    status, accepted = _request(cloud.api_url + "/v1/jobs", body)
    assert status == 202, accepted
    job: dict[str, Any] = cloud.jobs.wait(accepted["job_id"])
    return job


def _keys_of(cloud: Any, doc_id: str) -> dict[str, dict[str, Any]]:
    index = stored_vectors(cloud.client("s3vectors"), cloud.vector_index_arn)
    return {k: v for k, v in index.items() if v["metadata"]["document_id"] == doc_id}


def _search(cloud: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, answer = _request(cloud.api_url + "/v1/search", body)
    assert status == 200, answer
    results: list[dict[str, Any]] = answer["results"]
    return results


def _words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


@pytest.fixture(scope="module")
def corpus(cloud: Any) -> Iterator[dict[str, str]]:
    """The labelled search corpus (samples/search), ids prefixed for this run: id -> prefixed."""
    docs = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    ids = {d["id"]: f"{RUN}-{d['id']}" for d in docs}
    job = _ingest(cloud, [{"id": ids[d["id"]], "text": d["text"]} for d in docs])
    assert job["status"] == "SUCCEEDED", job
    yield ids


def test_search_results_are_the_exact_ranking_of_the_index(drained: Any, corpus: Any) -> None:
    cloud = drained
    index = stored_vectors(cloud.client("s3vectors"), cloud.vector_index_arn)
    keys = sorted(index)
    matrix = np.array([index[k]["data"]["float32"] for k in keys], dtype=np.float64)
    queries = [json.loads(line) for line in QUERIES.read_text().splitlines()][::6]
    for q in queries:
        _, embedded = _request(
            cloud.endpoint_url + "/invocations", {"inputs": [normalise_text(q["query"])]}
        )
        vector = np.array(embedded["outputs"][0], dtype=np.float64)
        cosine = (matrix @ vector) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector))
        order = np.lexsort((np.array(keys), 1 - cosine))[:10]
        results = _search(cloud, {"query": q["query"], "top_k": 10})
        assert [f"{r['document_id']}#{r['chunk_index']}" for r in results] == [
            keys[i] for i in order
        ]
        np.testing.assert_allclose([r["score"] for r in results], cosine[order], atol=1e-5)
        assert results[0]["text"] == index[keys[order[0]]]["metadata"]["text"]
        # and the labelled document is among them (the quality figures are in bench/)
        assert corpus[q["document"]] in {r["document_id"] for r in results}


def test_reingesting_replaces_and_a_shrunk_document_leaves_no_stale_chunks(
    drained: Any,
) -> None:
    cloud = drained
    doc_id = f"{RUN}-changing"
    first = _ingest(cloud, [{"id": doc_id, "text": _words(60, "old")}], chunk_tokens=32)
    assert first["status"] == "SUCCEEDED", first
    chunks = first["counts"]["chunks"]
    assert chunks >= 3
    assert sorted(_keys_of(cloud, doc_id)) == sorted(f"{doc_id}#{i}" for i in range(chunks))

    second = _ingest(cloud, [{"id": doc_id, "text": "The ferry now leaves at nine."}])
    assert second["status"] == "SUCCEEDED" and second["counts"]["chunks"] == 1
    (key, vector), *rest = _keys_of(cloud, doc_id).items()
    assert rest == [] and key == f"{doc_id}#0"  # the old chunks 1.. are gone
    assert vector["metadata"]["text"] == "The ferry now leaves at nine."
    assert vector["metadata"]["job_id"] == second["job_id"]
    hits = _search(cloud, {"query": "ferry", "filter": {"document_id": doc_id}})
    assert [(h["chunk_index"], h["text"]) for h in hits] == [(0, "The ferry now leaves at nine.")]


def test_delete_removes_a_document_and_a_repeat_finds_nothing(drained: Any) -> None:
    cloud = drained
    doc_id = f"{RUN}/notes #1"  # "/", " " and "#" travel percent-encoded
    job = _ingest(cloud, [{"id": doc_id, "text": _words(40, "note")}], chunk_tokens=32)
    assert job["status"] == "SUCCEEDED"
    assert len(_keys_of(cloud, doc_id)) == job["counts"]["chunks"] >= 2

    runner = CliRunner()
    out = runner.invoke(main, ["delete", doc_id, "--api", cloud.api_url])
    assert out.exit_code == 0, out.output
    assert out.output == f"deleted document {doc_id}: {job['counts']['chunks']} vector(s)\n"
    assert _keys_of(cloud, doc_id) == {}
    assert _search(cloud, {"query": "note", "filter": {"document_id": doc_id}}) == []
    again = TandemClient(cloud.api_url).delete_document(doc_id)
    assert again == {"document_id": doc_id, "found": False, "vectors": 0}


def test_a_retry_or_a_rerun_overwrites_instead_of_duplicating(drained: Any) -> None:
    cloud = drained
    docs = [
        {"id": f"{RUN}-twice-{i}", "text": f"Repeat number {i}: {_words(30, 'r')}"}
        for i in range(3)
    ]
    first = _ingest(cloud, docs, chunk_tokens=32, batch_size=2)
    assert first["status"] == "SUCCEEDED"
    before = {d["id"]: sorted(_keys_of(cloud, d["id"])) for d in docs}
    assert sum(map(len, before.values())) == first["counts"]["chunks"]

    # a Map child's collect step retried after a crash before its done mark (the shard): the
    # batch goes into the index again, under the same keys
    s3 = cloud.client("s3")
    paths = JobPaths(cloud.bucket, first["job_id"])
    for rel in (paths.shard_jsonl(0), paths.shard_npy(0)):
        s3.delete_object(Bucket=cloud.bucket, Key=paths.key(rel))
    request = {"inputs_uri": paths.uri(paths.batch_inputs(0)), "outputs_uri": ""}
    event = {"job_id": first["job_id"], "index": 0, "request": request}
    answer = cloud.client("lambda").invoke(
        FunctionName=cloud.functions["CollectFunction"].name, Payload=json.dumps(event).encode()
    )
    assert json.loads(answer["Payload"].read())["ok"] is True
    assert {d["id"]: sorted(_keys_of(cloud, d["id"])) for d in docs} == before

    # the same documents again, as a new job: the same keys, now the new job's
    second = _ingest(cloud, docs, chunk_tokens=32, batch_size=2)
    assert second["status"] == "SUCCEEDED"
    after = {d["id"]: _keys_of(cloud, d["id"]) for d in docs}
    assert {k: sorted(v) for k, v in after.items()} == before
    assert {v["metadata"]["job_id"] for keys in after.values() for v in keys.values()} == {
        second["job_id"]
    }


def test_throttled_index_writes_are_retried_and_the_job_succeeds(drained: Any) -> None:
    cloud = drained
    cloud.faults.vectors.set({"PutVectors": 2})
    try:
        doc_id = f"{RUN}-throttled"
        job = _ingest(cloud, [{"id": doc_id, "text": "Written after two 429 answers."}])
        assert cloud.faults.vectors.injected == ["PutVectors", "PutVectors"]
    finally:
        cloud.faults.vectors.set(None)
    assert job["status"] == "SUCCEEDED", job
    assert list(_keys_of(cloud, doc_id)) == [f"{doc_id}#0"]


def test_a_chunk_that_cannot_be_indexed_fails_its_document_with_the_reason(
    drained: Any,
) -> None:
    cloud = drained
    good, huge = f"{RUN}-fine", f"{RUN}-one-huge-word"
    job = _ingest(
        cloud,
        [{"id": good, "text": "A normal sentence."}, {"id": huge, "text": "y" * 45_000}],
    )
    assert job["status"] == "PARTIAL", job
    (failure,) = job["failed_documents"]
    assert failure["id"] == huge
    assert failure["reason"].startswith("chunk 0 cannot be indexed: its text and metadata are ")
    assert failure["reason"].endswith(" bytes, S3 Vectors allows 40960 per vector")
    assert _keys_of(cloud, huge) == {} and list(_keys_of(cloud, good)) == [f"{good}#0"]
    assert {r["document_id"] for r in cloud.jobs.result_rows(job["job_id"])} == {good}


# ---------------------------------------------------------------------- another model size
@pytest.fixture(scope="module")
def mismatched_cloud() -> Iterator[Any]:
    """A stack deployed for a 768-dimensional model, in front of the 384-dimensional one."""
    from tandem.local.cloud import LocalCloud

    with LocalCloud(
        stack_name="tandemdims", parameter_overrides={"EmbeddingDimensions": "768"}
    ) as cloud:
        yield cloud


def test_a_model_of_another_size_is_refused_and_the_index_stays_empty(
    mismatched_cloud: Any,
) -> None:
    cloud = mismatched_cloud
    job = _ingest(cloud, [{"id": "a", "text": "alpha"}, {"id": "b", "text": "beta"}])
    assert job["status"] == "FAILED", job
    reasons = {f["reason"] for f in job["failed_documents"]}
    assert reasons == {
        "batch not indexed: the model's vectors have 384 dimensions but the vector index holds "
        "768-dimensional vectors (a model of another size?)"
    }
    assert stored_vectors(cloud.client("s3vectors"), cloud.vector_index_arn) == {}
    status, answer = _request(cloud.api_url + "/v1/search", {"query": "alpha"})
    assert status == 502 and answer["error"]["code"] == "endpoint_error"
    assert "384-dimensional" in answer["error"]["message"]
    assert "768-dimensional" in answer["error"]["message"]
