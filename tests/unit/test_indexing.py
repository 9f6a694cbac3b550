"""Indexing into S3 Vectors from collect and deliver (usecases/indexing.py), the write pacer and
the vector-index adapter, against moto's S3 Vectors and DynamoDB with the real boto3 clients.

The vector resources come from template.yaml (conftest's `vector_index`), with the index sized to
the stand-in endpoint's 8-dimensional vectors (`fake_endpoint_run`). Through the real model and
the local cloud: tests/integration/local_cloud/test_local_search.py.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from conftest import (
    BUCKET,
    DOCS_TABLE,
    JOBS_TABLE,
    VECTOR_DIMS,
    VECTOR_INDEX_ARN,
    fake_endpoint_run,
    s3_json,
    s3_jsonl,
)
from tandem_common.adapters.documents import DocumentStore
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.storage import Storage
from tandem_common.adapters.vectors import VectorIndex, WritePacer, put_calls
from tandem_common.contracts import JobPaths
from tandem_common.errors import VectorIndexBusy, VectorIndexError
from tandem_common.models import JobCreate, JobOptions, Source
from tandem_common.settings import get_settings
from tandem_common.usecases.collect import collect_into_shard
from tandem_common.usecases.deliver import deliver_job
from tandem_common.usecases.indexing import Indexer, ending_documents
from tandem_common.usecases.intake import JobIntake
from tandem_common.usecases.preprocess import preprocess_job

DIMS = VECTOR_DIMS
INDEX = VECTOR_INDEX_ARN
JOB1 = "00000000-0000-4000-8000-000000000001"
JOB2 = "00000000-0000-4000-8000-000000000002"
ENDPOINT_ERROR = {"Error": "SageMakerRuntime.ModelErrorException", "Cause": "CUDA out of memory"}


def indexer() -> Indexer:
    made = Indexer.from_settings(get_settings())
    assert made is not None
    return made


def prepare(job_id: str, docs: list[dict[str, str]], **options: Any) -> Any:
    """A preprocessed job whose batches the stand-in endpoint embedded."""
    key = f"inbox/{job_id}/docs.jsonl"
    body = "\n".join(json.dumps(d) for d in docs).encode()
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    request = JobCreate(source=Source(s3_uri=f"s3://{BUCKET}/{key}"), options=JobOptions(**options))
    JobIntake(get_settings()).submit(job_id, request, "s3")
    pre = preprocess_job(job_id, get_settings(), JobStore(JOBS_TABLE), Storage())
    return pre


def embed(pre: Any, dims: int = DIMS, skip: tuple[int, ...] = ()) -> None:
    for ref in pre.batches:
        if ref.index not in skip:
            fake_endpoint_run(ref.inputs_uri, ref.outputs_uri, dims)


def collect(job_id: str, index: int, who: Indexer | None = None) -> Any:
    paths = JobPaths(BUCKET, job_id)
    return collect_into_shard(paths, index, None, Storage(), who or indexer())


def deliver(job_id: str, results: list[dict[str, Any]] | None = None) -> Any:
    from tandem_common.models import BatchResult

    given = [BatchResult.model_validate(r) for r in results or []]
    return deliver_job(job_id, given, get_settings(), JobStore(JOBS_TABLE), Storage(), indexer())


def run_job(job_id: str, docs: list[dict[str, str]], **options: Any) -> Any:
    pre = prepare(job_id, docs, **options)
    embed(pre)
    for ref in pre.batches:
        assert collect(job_id, ref.index).ok
    return deliver(job_id)


def stored(client: Any) -> dict[str, dict[str, Any]]:
    """key -> {"data", "metadata"} of every vector in the index."""
    page = client.list_vectors(indexArn=INDEX, returnData=True, returnMetadata=True)
    return {v["key"]: v for v in page["vectors"]}


def records() -> dict[str, dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=DOCS_TABLE)["Items"]
    return {i["document_id"]["S"]: {k: next(iter(v.values())) for k, v in i.items()} for i in items}


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


# ---------------------------------------------------------------------- collect
def test_collect_indexes_every_chunk_with_its_text_and_records_documents_that_end(
    vector_index: Any,
) -> None:
    # "long" has 3 chunks: one beside "a" in batch 0, two in batch 1 (with "b")
    docs = [
        {"id": "a", "text": "alpha beta"},
        {"id": "long", "text": words(40, "w")},
        {"id": "b", "text": "gamma delta"},
    ]
    pre = prepare(JOB1, docs, batch_size=2, chunk_tokens=32, chunk_overlap=0)
    assert pre.batch_count == 3
    embed(pre)
    assert collect(JOB1, 0).ok
    # "a" ended in batch 0; "long" goes on in batch 1, so it is not recorded yet
    assert {d: int(r["chunks"]) for d, r in records().items()} == {"a": 1}
    assert collect(JOB1, 1).ok and collect(JOB1, 2).ok
    assert {d: int(r["chunks"]) for d, r in records().items()} == {"a": 1, "long": 3, "b": 1}
    assert {r["job_id"] for r in records().values()} == {JOB1}

    index = stored(vector_index)
    assert sorted(index) == ["a#0", "b#0", "long#0", "long#1", "long#2"]
    texts = {
        row["chunk_id"]: row["text"]
        for ref in pre.batches
        for row in s3_jsonl(ref.inputs_uri.split(f"{BUCKET}/", 1)[1])
    }
    for key, vector in index.items():
        doc_id, chunk = key.rsplit("#", 1)
        assert vector["metadata"] == {
            "document_id": doc_id,
            "job_id": JOB1,
            "chunk_index": int(chunk),
            "text": texts[key],
        }
    # the vector is the endpoint's row (the shard's embedding, as float32)
    shard = s3_jsonl(f"jobs/{JOB1}/result/shards/vectors-00001.jsonl")
    for row in shard:
        assert index[row["chunk_id"]]["data"]["float32"] == pytest.approx(row["embedding"])


def test_reingesting_replaces_and_a_shrunk_document_leaves_no_stale_keys(vector_index: Any) -> None:
    assert run_job(
        JOB1, [{"id": "long", "text": words(40, "old")}], chunk_tokens=32, chunk_overlap=0
    ).status == ("SUCCEEDED")
    assert sorted(stored(vector_index)) == ["long#0", "long#1", "long#2"]
    assert run_job(JOB2, [{"id": "long", "text": "one short new version"}]).status == "SUCCEEDED"
    index = stored(vector_index)
    assert sorted(index) == ["long#0"]
    assert index["long#0"]["metadata"]["text"] == "one short new version"
    assert index["long#0"]["metadata"]["job_id"] == JOB2
    assert records()["long"]["chunks"] == "1" and records()["long"]["job_id"] == JOB2


def test_a_rerun_of_collect_overwrites_instead_of_adding(vector_index: Any) -> None:
    docs = [{"id": "a", "text": "alpha beta"}, {"id": "b", "text": "gamma delta"}]
    pre = prepare(JOB1, docs, batch_size=1)
    embed(pre)
    assert collect(JOB1, 0).ok and collect(JOB1, 1).ok
    before, table = stored(vector_index), records()
    # a retried child after a crash before its done mark: the shard is not there, so it runs again
    s3 = boto3.client("s3")
    for suffix in ("jsonl", "npy"):
        s3.delete_object(Bucket=BUCKET, Key=f"jobs/{JOB1}/result/shards/vectors-00000.{suffix}")
    assert collect(JOB1, 0).ok
    assert stored(vector_index) == before and sorted(before) == ["a#0", "b#0"]
    assert {d: r["chunks"] for d, r in records().items()} == {
        d: r["chunks"] for d, r in table.items()
    }


def test_a_model_of_another_size_fails_the_batch_before_anything_is_written(
    vector_index: Any,
) -> None:
    assert run_job(JOB1, [{"id": "a", "text": "alpha beta"}]).status == "SUCCEEDED"
    pre = prepare(JOB2, [{"id": "a", "text": "new alpha"}, {"id": "b", "text": "gamma"}])
    embed(pre, dims=6)
    result = collect(JOB2, 0)
    assert not result.ok
    assert result.reason == (
        "batch not indexed: the model's vectors have 6 dimensions but the vector index holds "
        "8-dimensional vectors (a model of another size?)"
    )
    assert s3_json(f"jobs/{JOB2}/batches/failed/batch-00000.json") == {
        "index": 0,
        "reason": result.reason,
    }
    out = deliver(JOB2)
    assert out.status == "FAILED" and out.counts.failed == 2
    # nothing was written: the previous version of "a" is whole, "b" was never indexed
    index = stored(vector_index)
    assert sorted(index) == ["a#0"] and index["a#0"]["metadata"]["job_id"] == JOB1


def test_a_chunk_that_cannot_be_indexed_fails_only_its_document(vector_index: Any) -> None:
    long_id = "\U0001d518" * 256  # 256 characters, 1,024 bytes: "{id}#0" is over S3's 1,024
    docs = [
        {"id": "a", "text": "alpha beta"},
        {"id": "huge", "text": "x" * 50_000},  # one 'word': one chunk of 50 KB of metadata
        {"id": long_id, "text": "a fine text under a long id"},
        {"id": "b", "text": "gamma delta"},
    ]
    out = run_job(JOB1, docs, batch_size=8)
    assert out.status == "PARTIAL"
    assert (out.counts.embedded, out.counts.failed) == (2, 2)
    reasons = {f["id"]: f["reason"] for f in s3_jsonl(f"jobs/{JOB1}/result/failures.jsonl")}
    assert reasons["huge"].startswith("chunk 0 cannot be indexed: its text and metadata are 500")
    assert reasons["huge"].endswith("bytes, S3 Vectors allows 40960 per vector")
    assert reasons[long_id] == (
        "chunk 0 cannot be indexed: its vector key (document id + '#' + chunk index) is 1026 "
        "bytes, S3 Vectors allows 1024"
    )
    assert sorted(stored(vector_index)) == ["a#0", "b#0"]
    assert set(records()) == {"a", "b"}
    shard = s3_jsonl(f"jobs/{JOB1}/result/shards/vectors-00000.jsonl")
    assert [r["document_id"] for r in shard] == ["a", "b"]  # the failed ones left the shard


def test_a_throttled_batch_fails_and_deliver_removes_its_documents_whole(
    vector_index: Any,
) -> None:
    old = [
        {"id": "a", "text": "alpha"},
        {"id": "long", "text": words(60, "old")},  # 4 chunks
        {"id": "c", "text": "zeta"},
    ]
    assert run_job(JOB1, old, batch_size=2, chunk_tokens=32, chunk_overlap=0).status == "SUCCEEDED"
    assert sorted(stored(vector_index)) == ["a#0", "c#0", "long#0", "long#1", "long#2", "long#3"]
    # the new version: batch 0 ("a", "long#0") indexes; batch 1 ("long#1", "long#2") is
    # throttled past the SDK's retries; batch 2 ("c") fails at the endpoint
    new = [
        {"id": "a", "text": "alpha two"},
        {"id": "long", "text": words(40, "new")},  # 3 chunks
        {"id": "c", "text": "zeta two"},
    ]
    pre = prepare(JOB2, new, batch_size=2, chunk_tokens=32, chunk_overlap=0)
    assert [len(s3_jsonl(f"jobs/{JOB2}/batches/rows-{i:05d}.jsonl")) for i in range(3)] == [2, 2, 1]
    embed(pre, skip=(2,))
    assert collect(JOB2, 0).ok
    client = boto3.client("s3vectors")
    with Stubber(client) as stub:
        stub.add_client_error(
            "put_vectors",
            service_error_code="TooManyRequestsException",
            service_message="Rate exceeded",
            http_status_code=429,
        )
        throttled = Indexer(VectorIndex(INDEX, client=client), DocumentStore(DOCS_TABLE))
        result = collect(JOB2, 1, throttled)
    assert not result.ok
    assert result.reason is not None and result.reason.startswith(
        "batch not indexed: S3 Vectors PutVectors failed: TooManyRequestsException: Rate exceeded"
    )
    assert s3_json(f"jobs/{JOB2}/batches/failed/batch-00001.json")["index_written"] is True
    out = deliver(JOB2, [{"index": 2, "ok": False, "error": ENDPOINT_ERROR}])
    assert (out.status, out.counts.embedded, out.counts.failed) == ("PARTIAL", 1, 2)
    index = stored(vector_index)
    # "long" was partly rewritten (its chunk 0 in batch 0): removed whole, old surplus too;
    # "c" was never touched by this job (its only batch failed at the endpoint): kept as it was
    assert sorted(index) == ["a#0", "c#0"]
    assert index["a#0"]["metadata"]["job_id"] == JOB2
    assert index["c#0"]["metadata"]["job_id"] == JOB1
    assert set(records()) == {"a", "c"}
    # a re-run of deliver changes nothing
    deliver(JOB2, [{"index": 2, "ok": False, "error": ENDPOINT_ERROR}])
    assert stored(vector_index) == index


def test_indexing_off_writes_no_vectors(cloud: None) -> None:
    assert get_settings().vectors.enabled is False
    assert Indexer.from_settings(get_settings()) is None


@pytest.mark.parametrize(
    ("rows", "next_first", "expected"),
    [
        ([("a", 0), ("b", 0), ("b", 1)], None, {"a": 1, "b": 2}),  # last batch
        ([("a", 0), ("b", 0), ("b", 1)], ("b", 2), {"a": 1}),  # b goes on
        ([("a", 0), ("b", 0), ("b", 1)], ("c", 0), {"a": 1, "b": 2}),
        ([("b", 3), ("b", 4)], ("b", 5), {}),  # a batch wholly inside one long document
        ([("b", 5)], None, {"b": 6}),
    ],
)
def test_ending_documents_counts_chunks_from_the_rows(
    rows: list[tuple[str, int]], next_first: tuple[str, int] | None, expected: dict[str, int]
) -> None:
    def row(doc: str, i: int) -> dict[str, Any]:
        return {"document_id": doc, "chunk_index": i}

    following = row(*next_first) if next_first else None
    assert ending_documents([row(d, i) for d, i in rows], following) == expected


# ---------------------------------------------------------------------- adapters
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_pacer_holds_a_writer_to_its_share_of_the_index_rates() -> None:
    clock = FakeClock()
    pacer = WritePacer(rate=100, writers=4, requests_per_s=400, clock=clock, sleep=clock.sleep)
    assert pacer.wait(50) == 0  # the first write goes at once and reserves 50 / 25 = 2 s
    assert pacer.wait(50) == pytest.approx(2.0)
    clock.now += 10  # idle: nothing owed
    assert pacer.wait(1) == 0
    assert pacer.wait(1) == pytest.approx(0.04)  # 1 vector: the request floor, 1 / (400 / 4)


@pytest.mark.parametrize(("writers", "batch"), [(1, 64), (8, 64), (40, 256)])
def test_map_concurrency_and_batch_size_bound_the_index_write_rate(
    writers: int, batch: int
) -> None:
    """`writers` collect steps (MapMaxConcurrency), each with its own pacer, writing batches of
    `batch` vectors as fast as the pacers let them: in any window of T seconds the index gets
    at most rate * T vectors, plus one batch per writer (the first writes are not held)."""
    rate, clock = 2000.0, FakeClock()
    pacers = [WritePacer(rate, writers, clock=clock, sleep=lambda s: None) for _ in range(writers)]
    written: list[tuple[float, int]] = []
    ready = [0.0] * writers
    while clock.now < 30:
        w = min(range(writers), key=lambda i: ready[i])
        clock.now = ready[w]
        delay = pacers[w].wait(batch)
        written.append((clock.now + delay, batch))
        ready[w] = clock.now + delay + 1e-3  # the next batch of this child is ready at once
    for start in (0.0, 7.5, 15.0):
        for span in (1.0, 10.0):
            total = sum(n for t, n in written if start <= t < start + span)
            assert total <= rate * span + writers * batch, (start, span, total)
    assert sum(n for t, n in written if t < 30) >= rate * 29  # and it does not under-use them


def test_put_calls_hold_at_most_500_vectors_and_20_mib() -> None:
    small = [{"key": f"k{i}", "data": {"float32": [0.5] * 4}} for i in range(1200)]
    assert [len(c) for c in put_calls(small)] == [500, 500, 200]
    big = [
        {"key": f"b{i}", "data": {"float32": [0.5]}, "metadata": {"text": "x" * (8 << 20)}}
        for i in range(3)
    ]
    assert [len(c) for c in put_calls(big)] == [2, 1]


def test_adapter_errors_name_the_call_and_the_service_message(vector_index: Any) -> None:
    client = boto3.client("s3vectors")
    index = VectorIndex(INDEX, client=client)
    with Stubber(client) as stub:
        stub.add_client_error("delete_vectors", "TooManyRequestsException", "slow down", 429)
        stub.add_client_error("put_vectors", "ValidationException", "bad vector", 400)
        with pytest.raises(VectorIndexBusy, match="DeleteVectors failed: TooManyRequestsException"):
            index.delete(["a#0"])
        with pytest.raises(VectorIndexError, match="PutVectors failed: ValidationException: bad"):
            index.put([{"key": "a#0", "data": {"float32": [0.0] * DIMS}}])


def test_query_reads_every_page_up_to_top_k(vector_index: Any) -> None:
    client = boto3.client("s3vectors")
    index = VectorIndex(INDEX, client=client)
    hit = [{"key": f"d#{i}", "distance": i / 10, "metadata": {}} for i in range(5)]
    with Stubber(client) as stub:
        stub.add_response(
            "query_vectors",
            {"vectors": hit[:3], "distanceMetric": "cosine", "nextToken": "page-2"},
        )
        stub.add_response("query_vectors", {"vectors": hit[3:], "distanceMetric": "cosine"})
        assert index.query([0.1] * DIMS, top_k=4) == hit[:4]
