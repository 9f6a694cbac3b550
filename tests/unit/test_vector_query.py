"""moto gaps 8-9 (tandem/local/moto_compat.py): QueryVectors answered exactly, checked against a
direct numpy computation, and the index keeping its non-filterable metadata keys. Through the
real boto3 `s3vectors` client against in-process moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tandem.local import moto_compat

BUCKET = "tandem-vectors"
DIMS = 16
N = 300


@pytest.fixture
def s3vectors() -> Iterator[Any]:
    moto_compat.add_vector_query()
    with mock_aws():
        client = boto3.client("s3vectors", region_name="us-east-1")
        client.create_vector_bucket(vectorBucketName=BUCKET)
        yield client


def _index(client: Any, name: str, metric: str = "cosine") -> str:
    client.create_index(
        vectorBucketName=BUCKET,
        indexName=name,
        dataType="float32",
        dimension=DIMS,
        distanceMetric=metric,
        metadataConfiguration={"nonFilterableMetadataKeys": ["text"]},
    )
    return f"arn:aws:s3vectors:us-east-1:123456789012:bucket/{BUCKET}/index/{name}"


def _fill(
    client: Any, arn: str, seed: int = 7
) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    # float32 values, as the index stores them; some rows scaled: cosine ignores the norm
    matrix = (rng.standard_normal((N, DIMS)) * rng.uniform(0.1, 3, (N, 1))).astype(np.float32)
    keys = [f"doc-{i % 37}#{i}" for i in range(N)]
    metadata = [
        {
            "document_id": f"doc-{i % 37}",
            "job_id": f"job-{i % 3}",
            "chunk_index": i,
            "text": f"t{i}",
        }
        for i in range(N)
    ]
    vectors = [
        {"key": k, "data": {"float32": row.tolist()}, "metadata": m}
        for k, row, m in zip(keys, matrix, metadata, strict=True)
    ]
    for start in range(0, N, 100):
        client.put_vectors(indexArn=arn, vectors=vectors[start : start + 100])
    return keys, matrix.astype(np.float64), metadata


def _numpy_ranking(
    query: np.ndarray,
    keys: list[str],
    matrix: np.ndarray,
    metric: str,
    mask: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    if metric == "cosine":
        distance = 1 - (matrix @ query) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    else:
        distance = np.linalg.norm(matrix - query, axis=1)
    order = [i for i in np.lexsort((np.array(keys), distance)) if mask is None or mask[i]]
    return [keys[i] for i in order], distance[order]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_query_is_the_exact_numpy_ranking(s3vectors: Any, metric: str) -> None:
    arn = _index(s3vectors, f"exact-{metric}", metric)
    keys, matrix, _ = _fill(s3vectors, arn)
    rng = np.random.default_rng(11)
    for _ in range(5):
        query = rng.standard_normal(DIMS).astype(np.float32).astype(np.float64)
        answer = s3vectors.query_vectors(
            indexArn=arn,
            topK=25,
            queryVector={"float32": query.tolist()},
            returnDistance=True,
        )
        assert answer["distanceMetric"] == metric
        want_keys, want_distance = _numpy_ranking(query, keys, matrix, metric)
        assert [v["key"] for v in answer["vectors"]] == want_keys[:25]
        got = np.array([v["distance"] for v in answer["vectors"]])
        np.testing.assert_allclose(got, want_distance[:25], rtol=0, atol=1e-5)
        assert all("metadata" not in v for v in answer["vectors"])  # not asked for


def test_filters_select_before_ranking_and_metadata_comes_back(s3vectors: Any) -> None:
    arn = _index(s3vectors, "filtered")
    keys, matrix, metadata = _fill(s3vectors, arn)
    query = matrix[5]
    flt = {"$and": [{"document_id": {"$in": ["doc-1", "doc-2", "doc-5"]}}, {"job_id": "job-2"}]}
    answer = s3vectors.query_vectors(
        indexArn=arn,
        topK=100,
        queryVector={"float32": query.tolist()},
        filter=flt,
        returnMetadata=True,
    )
    mask = np.array(
        [
            m["document_id"] in ("doc-1", "doc-2", "doc-5") and m["job_id"] == "job-2"
            for m in metadata
        ]
    )
    want_keys, _ = _numpy_ranking(query, keys, matrix, "cosine", mask)
    assert [v["key"] for v in answer["vectors"]] == want_keys  # every match: fewer than topK
    assert len(want_keys) == int(mask.sum()) > 0
    by_key = dict(zip(keys, metadata, strict=True))
    assert all(v["metadata"] == by_key[v["key"]] for v in answer["vectors"])


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"genre": "drama"}, {"a", "c"}),  # an array matches any of its elements
        ({"genre": {"$eq": "comedy"}}, {"c"}),
        ({"genre": {"$ne": "drama"}}, {"b", "d"}),  # a missing key is "not equal"
        ({"year": {"$gt": 2000}}, {"b", "c"}),
        ({"year": {"$gte": 2000, "$lt": 2010}}, {"a", "b"}),  # several operators: all hold
        ({"year": {"$lte": 1999}}, set()),
        ({"genre": {"$in": ["comedy", "horror"]}}, {"b", "c"}),
        ({"genre": {"$nin": ["comedy", "horror"]}}, {"a", "d"}),
        ({"genre": {"$exists": False}}, {"d"}),
        ({"$or": [{"year": 2000}, {"genre": "horror"}]}, {"a", "b"}),
        ({"genre": "drama", "year": 2012}, {"c"}),  # keys are ANDed
    ],
)
def test_filter_operators_follow_the_documented_semantics(
    flt: dict[str, Any], expected: set[str]
) -> None:
    rows: dict[str, dict[str, Any]] = {
        "a": {"genre": ["drama"], "year": 2000},
        "b": {"genre": "horror", "year": 2005},
        "c": {"genre": ["drama", "comedy"], "year": 2012},
        "d": {"year": 1999.5},
    }
    assert {k for k, m in rows.items() if moto_compat.filter_matches(m, flt)} == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": {"text": "t1"}}, "non-filterable"),
        ({"filter": {"year": {"$regex": "x"}}}, "unknown operator"),
        ({"filter": {"$or": []}}, "non-empty array"),
        ({"topK": 101}, "topK must be between 1 and 100"),
        ({"queryVector": {"float32": [0.5] * (DIMS + 1)}}, "must have length 16"),
    ],
)
def test_bad_queries_are_validation_errors(
    s3vectors: Any, params: dict[str, Any], message: str
) -> None:
    arn = _index(s3vectors, "refusals")
    _fill(s3vectors, arn)
    request = {"indexArn": arn, "topK": 3, "queryVector": {"float32": [0.5] * DIMS}, **params}
    with pytest.raises(ClientError) as caught:
        s3vectors.query_vectors(**request)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert message in caught.value.response["Error"]["Message"]


def test_the_index_keeps_its_non_filterable_keys(s3vectors: Any) -> None:
    arn = _index(s3vectors, "configured")
    index = s3vectors.get_index(indexArn=arn)["index"]
    assert index["metadataConfiguration"] == {"nonFilterableMetadataKeys": ["text"]}
    assert index["dimension"] == DIMS


def test_paginator_and_an_empty_index(s3vectors: Any) -> None:
    arn = _index(s3vectors, "empty")
    pages = s3vectors.get_paginator("query_vectors").paginate(
        indexArn=arn, topK=5, queryVector={"float32": [1.0] * DIMS}
    )
    assert [v for page in pages for v in page["vectors"]] == []
