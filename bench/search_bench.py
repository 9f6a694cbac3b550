"""Search quality and latency through the local cloud, with the real model.

1. Ingest `samples/search/corpus.jsonl` (24 documents on 12 pairs of close topics) and, as
   distractors, every `samples/api/` file, through `POST /v1/jobs`.
2. Every query of `samples/search/queries.jsonl` (48, each labelled with the document it should
   find) through `POST /v1/search` (`TandemClient.search`, top_k 10): recall@1 and recall@5 (the
   labelled document is the first hit / among the first five).
3. Exactness: each answer must equal the exact ranking computed with numpy (cosine over every
   vector stored in the index, the query embedded by the endpoint), keys in order and scores.
4. Latency of one search, client side (warm, one at a time), and where it goes: the endpoint's
   embedding of the query and QueryVectors, each timed alone.

    .venv/bin/python bench/search_bench.py [--no-write]

Writes `<!-- search-bench:start/end -->` in docs/BENCHMARKS.md; exits 1 when an answer is not
the exact ranking.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_doc import write_section
from tandem_common.text.normalise import normalise_text

from tandem.client import TandemClient
from tandem.local.inspection import stored_vectors
from tandem.submission import documents_from_file

REPO = Path(__file__).resolve().parent.parent
SEARCH = REPO / "samples" / "search"
TOP_K = 10
WARMUP = 3
# AWS's own figure for S3 Vectors queries (docs.aws.amazon.com/AmazonS3/latest/userguide/
# s3-vectors-best-practices.html, checked 2026-12-01)
AWS_SOURCE = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-vectors-best-practices.html"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1000:.0f} / {p95 * 1000:.0f} / {ordered[-1] * 1000:.0f}"


def ingest(cloud: Any, api: TandemClient) -> tuple[int, int]:
    jobs = [api.create_job(documents=_jsonl(SEARCH / "corpus.jsonl"))["job_id"]]
    for f in sorted((REPO / "samples" / "api").glob("*")):
        distractors = documents_from_file(f)
        if distractors:
            jobs.append(api.create_job(documents=distractors)["job_id"])
    views = cloud.jobs.wait_all(jobs, 600, 1.0)
    if len(views) != len(jobs):
        sys.exit(f"only {len(views)} of {len(jobs)} jobs finished")
    documents = sum(int(v["counts"]["documents"]) for v in views.values())
    return documents, len(jobs)


def exact_ranking(
    index: dict[str, dict[str, Any]], vector: np.ndarray
) -> tuple[list[str], np.ndarray]:
    keys = sorted(index)
    matrix = np.array([index[k]["data"]["float32"] for k in keys], dtype=np.float64)
    cosine = (matrix @ vector) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector))
    order = np.lexsort((np.array(keys), 1 - cosine))[:TOP_K]
    return [keys[i] for i in order], cosine[order]


def embed(cloud: Any, text: str) -> np.ndarray:
    import urllib.request

    body = json.dumps({"inputs": [normalise_text(text)]}).encode()
    req = urllib.request.Request(
        cloud.endpoint_url + "/invocations", body, {"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return np.array(json.loads(r.read())["outputs"][0], dtype=np.float64)


def run(cloud: Any) -> tuple[str, bool]:
    load = os.getloadavg()[0]  # other work on the machine shows in the latencies
    api = TandemClient(cloud.api_url)
    t = time.monotonic()
    documents, jobs = ingest(cloud, api)
    ingest_s = time.monotonic() - t
    s3vectors = cloud.client("s3vectors")
    index = stored_vectors(s3vectors, cloud.vector_index_arn)
    queries = _jsonl(SEARCH / "queries.jsonl")
    for q in queries[:WARMUP]:
        api.search(q["query"], TOP_K)

    hits1 = hits5 = exact = 0
    worst = 0.0
    latency: list[float] = []
    misses: list[str] = []
    for q in queries:
        t = time.perf_counter()
        results = api.search(q["query"], TOP_K)["results"]
        latency.append(time.perf_counter() - t)
        docs = [r["document_id"] for r in results]
        hits1 += docs[:1] == [q["document"]]
        hits5 += q["document"] in docs[:5]
        if docs[:1] != [q["document"]]:
            misses.append(f"`{q['query']}`: expected `{q['document']}`, got `{docs[0]}`")
        want_keys, want_scores = exact_ranking(index, embed(cloud, q["query"]))
        got_keys = [f"{r['document_id']}#{r['chunk_index']}" for r in results]
        scores = np.array([r["score"] for r in results])
        if got_keys == want_keys and len(scores) == len(want_scores):
            exact += 1
            worst = max(worst, float(np.max(np.abs(scores - want_scores))))

    # where one search's time goes: each part alone, as the api function calls them
    embed_s, query_s = [], []
    for q in queries:
        t = time.perf_counter()
        vector = embed(cloud, q["query"])
        embed_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        s3vectors.query_vectors(
            indexArn=cloud.vector_index_arn,
            topK=TOP_K,
            queryVector={"float32": vector.tolist()},
            returnMetadata=True,
            returnDistance=True,
        )
        query_s.append(time.perf_counter() - t)

    n = len(queries)
    lines = [
        "### Search: quality and latency of `POST /v1/search` (local cloud, real model)",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; Machine: "
        f"{platform.machine()}, {os.cpu_count()} CPUs (1-minute load average {load:.1f} at the "
        "start); local cloud (moto's S3 Vectors with moto_compat's exact QueryVectors, the real "
        "all-MiniLM-L6-v2 on the CPU endpoint)",
        f"- Index: {len(index)} chunks of {documents} documents from {jobs} jobs "
        f"(samples/search/corpus.jsonl, 24 documents on 12 pairs of close topics, and "
        f"samples/api as distractors), ingested through POST /v1/jobs in {ingest_s:.1f} s",
        f"- Queries: samples/search/queries.jsonl, {n} questions each labelled with the document "
        f"it should find (2 per document, paraphrased), top_k {TOP_K}",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| **recall@1** | **{hits1 / n:.3f}** ({hits1}/{n}) |",
        f"| **recall@5** | **{hits5 / n:.3f}** ({hits5}/{n}) |",
        f"| answers equal to the exact numpy ranking (keys, in order) | {exact}/{n} |",
        f"| largest score difference from numpy, over those | {worst:.1e} |",
        f"| one search, client side, p50 / p95 / max ms (warm, sequential) | {_ms(latency)} |",
        f"| ... the endpoint embedding the query alone, p50 / p95 / max ms | {_ms(embed_s)} |",
        f"| ... QueryVectors alone (exact, {len(index)} vectors), p50 / p95 / max ms | "
        f"{_ms(query_s)} |",
        "",
        "Score is 1 - cosine distance (the cosine similarity). Locally the rest of a search is "
        "the local HTTP API, the api function's worker process and moto's HTTP round trips. "
        'Expected on AWS: QueryVectors is "sub-second for cold queries and as low as 100 '
        f'milliseconds for warm queries" per AWS ([S3 Vectors best practices]({AWS_SOURCE})); '
        "add one SageMaker InvokeEndpoint for one short text (the CPU figure above is this "
        "machine's; a GPU instance was not measured here) and a warm Lambda behind API Gateway. "
        "Not measured on AWS here.",
    ]
    if misses:
        lines += ["", f"Misses at @1 ({len(misses)}):", ""] + [f"- {m}" for m in misses]
    return "\n".join(lines), exact == n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from tandem.local.cloud import LocalCloud

    with LocalCloud(stack_name="tandembench") as cloud:
        section, all_exact = run(cloud)
    print(section)
    if not args.no_write:
        write_section("search-bench", section)
    if not all_exact:
        sys.exit("an answer was not the exact ranking")


if __name__ == "__main__":
    main()
