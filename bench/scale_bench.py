"""How the pipeline's cost grows with a job's size, through the local cloud (issue 12).

For each size (default 10k, 100k and 1M chunks) a fresh local cloud runs one job with the
endpoint's `fake-fast` backend (deterministic pseudo-vectors at memory speed: this measures the
orchestration, not a model) and records: wall time, chunks/s, each function process's peak
memory (its worker's max RSS, like Lambda's "Max Memory Used"), the S3 requests that reached the
moto server, the parent execution's history events and state transitions, and whether the job
took the Distributed Map. Every chunk must be accounted for. Writes the `scale-bench` section
of docs/BENCHMARKS.md.

    .venv/bin/python bench/scale_bench.py [--sizes 10000,100000,1000000] [--no-write]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench_doc import write_section

from tandem.client import TandemClient
from tandem.local.cloud import LocalCloud

BATCH = 64
CONCURRENCY = 8
CHUNK_TOKENS = 32  # small chunks: many of them per MB of input
WORDS_PER_DOC = 120  # ~4 chunks of <= 30 tokens each
WORDS = [
    "river",
    "harbour",
    "ferry",
    "tide",
    "moon",
    "lantern",
    "orchard",
    "meadow",
    "valley",
    "summit",
    "glacier",
    "canyon",
    "island",
    "coast",
    "beacon",
    "compass",
    "anchor",
    "sail",
    "rope",
    "deck",
    "cargo",
    "market",
    "bridge",
    "tower",
    "garden",
    "library",
    "archive",
    "ledger",
    "signal",
    "engine",
    "turbine",
    "cable",
    "window",
    "shadow",
    "thunder",
    "breeze",
    "silver",
    "copper",
    "amber",
    "crimson",
    "violet",
    "golden",
    "quiet",
    "rapid",
    "gentle",
    "ancient",
    "modern",
    "hidden",
]


def corpus(chunks: int, seed: int = 12) -> tuple[bytes, int]:
    """A JSONL corpus of about `chunks` chunks (at CHUNK_TOKENS, no overlap): (bytes, docs)."""
    rng = random.Random(seed)
    per_doc = max(1, WORDS_PER_DOC // (CHUNK_TOKENS - 2))
    docs = max(1, chunks // per_doc)
    lines = []
    for i in range(docs):
        text = " ".join(rng.choice(WORDS) for _ in range(WORDS_PER_DOC))
        lines.append(json.dumps({"id": f"doc-{i}", "text": f"{i} {text}"}))
    return ("\n".join(lines) + "\n").encode(), docs


def run_size(target: int, timeout: float) -> dict[str, Any]:
    data, docs = corpus(target)
    with (
        tempfile.TemporaryDirectory(prefix="scale-bench-") as logs,
        LocalCloud(
            log_dir=logs,
            endpoint_args=["--backend", "fake-fast"],
            # No vector index: moto keeps each vector as Python objects (measured: about 20 KB
            # of RSS per 384-dimension vector), so 1M would need ~20 GB here. What indexing adds
            # per batch (one PutVectors, one BatchGetItem, one BatchWriteItem in collect) is in
            # docs/ARCHITECTURE.md; bench/search_bench.py and the tests run it.
            parameter_overrides={
                "BatchSize": str(BATCH),
                "MapMaxConcurrency": str(CONCURRENCY),
                "VectorIndexing": "false",
            },
        ) as cloud,
    ):
        key = f"staging/scale/{uuid.uuid4().hex}.jsonl"
        cloud.client("s3").put_object(Bucket=cloud.bucket, Key=key, Body=data)
        cloud.requests.reset()
        api = TandemClient(cloud.api_url)
        t0 = time.monotonic()
        accepted = api.create_job(
            source=f"s3://{cloud.bucket}/{key}",
            options={"chunk_tokens": CHUNK_TOKENS, "chunk_overlap": 0},
        )
        job = cloud.jobs.wait(accepted["job_id"], timeout=timeout, interval=2.0)
        wall = time.monotonic() - t0
        events = cloud.jobs.history(job["job_id"])
        requests = cloud.requests.snapshot()
        memory = {
            name.removeprefix("tandem-"): mb
            for name, mb in cloud.lambda_service.peak_memory_mb.items()
        }
        shards = cloud.jobs.shards(job["job_id"])
        counts = job["counts"]
        batches = int((job.get("progress") or {}).get("batches", 0))
        assert job["status"] == "SUCCEEDED", job
        assert counts["embedded"] == counts["chunks"] == sum(s["rows"] for s in shards), counts
        assert counts["documents"] == docs and counts["failed"] == 0, counts
        s3 = {k.split(" ", 1)[1]: v for k, v in requests.items() if k.startswith("s3 ")}
        return {
            "chunks": counts["chunks"],
            "documents": docs,
            "input_mb": round(len(data) / 1e6, 1),
            "batches": batches,
            "distributed": any(e["type"] == "MapRunStarted" for e in events),
            "wall_s": round(wall, 1),
            "chunks_per_s": round(counts["chunks"] / wall),
            "memory_mb": memory,
            "s3_requests": sum(s3.values()),
            "s3_by_method": s3,
            "parent_events": len(events),
            "parent_transitions": sum(e["type"].endswith("StateEntered") for e in events),
            "child_states": 2 * batches,  # InvokeEndpoint + CollectBatch per child, no retries
            "shards": len(shards),
        }


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| chunks | batches | Map | wall (s) | chunks/s | peak MB preprocess / collect / deliver"
        " | S3 requests (per 1k chunks) | parent history events | parent transitions |",
        "|---:|---:|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        m = r["memory_mb"]
        mem = " / ".join(
            str(m.get(f, "-")) for f in ("PreprocessFunction", "CollectFunction", "DeliverFunction")
        )
        rows.append(
            f"| {r['chunks']:,} | {r['batches']:,} | {'distributed' if r['distributed'] else 'inline'}"
            f" | {r['wall_s']} | {r['chunks_per_s']:,} | {mem}"
            f" | {r['s3_requests']:,} ({1000 * r['s3_requests'] / r['chunks']:.1f})"
            f" | {r['parent_events']} | {r['parent_transitions']} |"
        )
    return "\n".join(rows)


def growth(results: list[dict[str, Any]]) -> list[str]:
    """Ratios between consecutive sizes: how each measure grows against the work."""
    lines = []
    for small, big in itertools.pairwise(results):
        work = big["chunks"] / small["chunks"]
        deliver = big["memory_mb"].get("DeliverFunction", 0) / max(
            1, small["memory_mb"].get("DeliverFunction", 0)
        )
        lines.append(
            f"- {small['chunks']:,} → {big['chunks']:,} chunks ({work:.1f}x the work): wall "
            f"{big['wall_s'] / small['wall_s']:.2f}x, S3 requests "
            f"{big['s3_requests'] / small['s3_requests']:.2f}x, deliver's peak memory "
            f"{deliver:.2f}x, parent history events {big['parent_events']} vs "
            f"{small['parent_events']}."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"== {size:,} chunks", flush=True)
        result = run_size(size, args.timeout)
        print(json.dumps(result), flush=True)
        results.append(result)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join(
        [
            "## Scale: how a job's cost grows with its size (`bench/scale_bench.py`)",
            "",
            f"- Date: {now}; Machine: {platform.machine()}, 2 CPUs (shared); local cloud with the "
            f"endpoint's `fake-fast` backend (pseudo-vectors, not a model), BatchSize {BATCH}, "
            f"MapMaxConcurrency {CONCURRENCY}, chunk_tokens {CHUNK_TOKENS}; one job per size in a "
            "fresh local cloud; every chunk accounted for in the shards.",
            "- Peak MB: each function's worker process max RSS (Lambda's Max Memory Used); "
            "S3 requests: those that reached the moto server (functions, endpoint), not the state "
            "machine's own ItemReader/ResultWriter calls; parent history: the job's execution "
            "(a Distributed Map's children are their own executions).",
            "",
            table(results),
            "",
            *growth(results),
        ]
    )
    print(section)
    if not args.no_write:
        write_section("scale-bench", section)


if __name__ == "__main__":
    main()
