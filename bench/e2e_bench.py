"""Orchestration efficiency and local end-to-end throughput, through the local cloud.

One LocalCloud (moto + the real functions + the real model endpoint) with BatchSize 64, the
deployed default (the local cloud's own default is 16):

1. Orchestration: one job of ~1,024 one-chunk documents through S3 (inbox/ upload), then
   `get_execution_history` of its finished execution: state transitions (every `*StateEntered`
   event, which is what Standard bills) and Lambda invocations (`LambdaFunctionScheduled` /
   `TaskScheduled` on `lambda:invoke`), per 1,000 chunks; side by side with the count derived
   from statemachine/pipeline.asl.json (4 states per job + 2 per batch on the success path).
2. End to end: the demo corpus (samples/: api, s3 and sqs paths) submitted at once; documents/s
   and chunks/s from first submit to last terminal job; where the time goes from the execution
   histories (time in each state, summed); and a pyinstrument profile of preprocess's CPU path
   (decode, normalise, chunk, place) on the same corpus, summarised.

    .venv/bin/python bench/e2e_bench.py [--docs 1024] [--no-write]

Writes `<!-- orchestration:start/end -->` and `<!-- e2e-local:start/end -->` in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_doc import write_section
from tandem_common.contracts import s3_job_id, s3_revision

from tandem.client import TandemClient
from tandem.submission import documents_from_file

REPO = Path(__file__).resolve().parent.parent
BATCH = 64


def count_events(events: list[dict[str, Any]]) -> tuple[int, int]:
    transitions = sum(e["type"].endswith("StateEntered") for e in events)
    lambdas = 0
    for e in events:
        if e["type"] == "LambdaFunctionScheduled":
            lambdas += 1
        elif e["type"] == "TaskScheduled":
            details = e.get("taskScheduledEventDetails", {})
            lambdas += details.get("resourceType") == "lambda"
    return transitions, lambdas


def state_times(events: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds spent in each named state (entered -> exited), summed over iterations."""
    open_: dict[str, list[datetime]] = defaultdict(list)
    spent: dict[str, float] = defaultdict(float)
    for e in events:
        t = e["timestamp"]
        if e["type"].endswith("StateEntered"):
            open_[e["stateEnteredEventDetails"]["name"]].append(t)
        elif e["type"].endswith("StateExited"):
            name = e["stateExitedEventDetails"]["name"]
            if open_[name]:
                spent[name] += (t - open_[name].pop(0)).total_seconds()
    return spent


def wait_all(cloud: Any, job_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = cloud.jobs.wait_all(job_ids, timeout, 0.2)
    if len(done) < len(job_ids):
        sys.exit(f"only {len(done)}/{len(job_ids)} jobs finished in {timeout}s")
    return done


def orchestration(cloud: Any, n_docs: int) -> str:
    s3 = cloud.client("s3")
    body = "\n".join(
        json.dumps({"id": f"d{i}", "text": f"Document {i} says hello to batch {i // BATCH}."})
        for i in range(n_docs)
    ).encode()
    key = f"inbox/bench/orchestration-{uuid.uuid4().hex[:8]}.jsonl"
    put = s3.put_object(Bucket=cloud.bucket, Key=key, Body=body)
    job_id = s3_job_id(cloud.bucket, key, s3_revision(put.get("VersionId"), put["ETag"]))
    job = wait_all(cloud, [job_id], 600)[job_id]
    events = cloud.jobs.history(job_id)
    transitions, lambdas = count_events(events)
    chunks = int(job.get("counts", {}).get("chunks", n_docs))
    batches = math.ceil(chunks / BATCH)
    predicted = 4 + 2 * batches  # Preprocess, ChooseMapMode, EmbedBatches, Deliver + 2 per batch
    per_k = transitions * 1000 / chunks
    kinds = Counter(e["type"] for e in events if e["type"].endswith("StateEntered"))
    big = 1_000_000
    big_batches = math.ceil(big / BATCH)
    lines = [
        "### Orchestration: state transitions and Lambda invocations per 1,000 chunks",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; local cloud, "
        f"BatchSize {BATCH} (the deployed default); job status {job.get('status')}",
        f"- One job, {chunks} chunks in {batches} batches, read back with "
        "`get_execution_history` of the finished execution",
        "",
        "| | measured (local run) | from the definition | per 1,000 chunks (measured) |",
        "|---|---:|---:|---:|",
        f"| state transitions (`*StateEntered`) | {transitions} | {predicted} | **{per_k:.1f}** |",
        f"| Lambda invocations | {lambdas} | 2 | {lambdas * 1000 / chunks:.2f} |",
        f"| endpoint calls (SDK task, not Lambda) | {batches} | {batches} | "
        f"{batches * 1000 / chunks:.1f} |",
        "",
        f"- Entered states: {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}.",
        f"- Target ≤ 60 transitions per 1,000 chunks: **{'met' if per_k <= 60 else 'missed'}** "
        f"({per_k:.1f}). Asymptotically 2 per batch = {2000 / BATCH:.1f} per 1,000 chunks; a "
        f"1,000,000-chunk job ({big_batches} batches) takes the Distributed Map: its Express "
        "children run the batches (billed per request and GB-s, not per transition), and the "
        "parent keeps a handful of transitions.",
        "- A job is 4 transitions + 2 per batch, so small jobs cost more per chunk: a one-chunk "
        "job is 6 transitions. Batch many documents into one job (one JSONL upload, one SQS "
        "message, one POST) to stay near the asymptote.",
    ]
    return "\n".join(lines)


def demo_submit(cloud: Any) -> tuple[list[str], int]:
    samples = REPO / "samples"
    api = TandemClient(cloud.api_url)
    s3, sqs = cloud.client("s3"), cloud.client("sqs")
    jobs: list[str] = []
    n_bytes = 0
    for f in sorted((samples / "api").glob("*")):
        docs = documents_from_file(f)
        if docs is None:
            continue
        n_bytes += f.stat().st_size
        jobs.append(api.create_job(documents=docs)["job_id"])
    for f in sorted((samples / "s3").glob("*")):
        key = f"inbox/e2e-{uuid.uuid4().hex[:6]}/{f.name}"
        put = s3.put_object(Bucket=cloud.bucket, Key=key, Body=f.read_bytes())
        n_bytes += f.stat().st_size
        jobs.append(s3_job_id(cloud.bucket, key, s3_revision(put.get("VersionId"), put["ETag"])))
    for f in sorted((samples / "sqs").glob("*")):
        key = f"staging/e2e/{uuid.uuid4().hex[:6]}-{f.name}"
        s3.put_object(Bucket=cloud.bucket, Key=key, Body=f.read_bytes())
        n_bytes += f.stat().st_size
        job_id = str(uuid.uuid4())
        sqs.send_message(
            QueueUrl=cloud.queue_url,
            MessageBody=json.dumps({"job_id": job_id, "s3_uri": f"s3://{cloud.bucket}/{key}"}),
        )
        jobs.append(job_id)
    return jobs, n_bytes


def cpu_profile() -> tuple[str, float]:
    """pyinstrument over preprocess's CPU path on the demo corpus (no AWS calls)."""
    from pyinstrument import Profiler
    from tandem_common.text.chunking import chunk_text, place_chunks
    from tandem_common.text.decoding import parse_input
    from tandem_common.text.normalise import normalise_text

    files = [f for f in sorted((REPO / "samples").rglob("*")) if f.is_file()]
    files = [f for f in files if f.suffix in {".txt", ".md", ".json", ".jsonl"}]
    files = [f for f in files if f.name not in {"expected_failures.json"}]
    blobs = [(f.name, f.read_bytes()) for f in files]
    profiler = Profiler(interval=0.0005)
    t = time.perf_counter()
    profiler.start()
    for _ in range(20):
        chunks = []
        for name, data in blobs:
            for doc in parse_input(name, data).documents:
                text = normalise_text(doc.text)
                chunks += [(doc.id, c) for c in chunk_text(text, 256, 32)]
        place_chunks(chunks, BATCH)
    profiler.stop()
    elapsed = (time.perf_counter() - t) / 20
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    keep = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("  _", "Recorded"))]
    return "\n".join(keep[:28]), elapsed


def e2e(cloud: Any) -> str:
    t0 = time.monotonic()
    jobs, n_bytes = demo_submit(cloud)
    done = wait_all(cloud, jobs, 600)
    wall = time.monotonic() - t0
    docs = sum(int(j.get("counts", {}).get("documents", 0)) for j in done.values())
    chunks = sum(int(j.get("counts", {}).get("chunks", 0)) for j in done.values())
    statuses = Counter(j["status"] for j in done.values())
    spent: dict[str, float] = defaultdict(float)
    for jid in jobs:
        for k, v in state_times(cloud.jobs.history(jid)).items():
            spent[k] += v
    top = ["Preprocess", "EmbedBatches", "InvokeEndpoint", "Deliver"]
    total = sum(spent.get(k, 0.0) for k in ("Preprocess", "EmbedBatches", "Deliver")) or 1.0
    profile, cpu_s = cpu_profile()
    lines = [
        "### Local end-to-end throughput (demo corpus)",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs; local cloud (moto, functions in "
        f"worker processes, the real model on the local endpoint, CPU), BatchSize {BATCH}",
        f"- {len(jobs)} jobs ({dict(statuses)}) through the api, s3 and sqs paths; "
        f"{n_bytes / 1024:.0f} KiB of input",
        "",
        "| documents | chunks | wall s (first submit → last terminal) | documents/s | chunks/s |",
        "|---:|---:|---:|---:|---:|",
        f"| {docs} | {chunks} | {wall:.1f} | {docs / wall:.2f} | {chunks / wall:.2f} |",
        "",
        "Where the time goes, from the execution histories (seconds in each state, summed over "
        "jobs; jobs overlap, so the sum exceeds the wall time):",
        "",
        "| state | seconds | share |",
        "|---|---:|---:|",
    ]
    for k in top:
        if k in spent:
            share = f"{spent[k] / total:.0%}" if k != "InvokeEndpoint" else "(inside the Map)"
            lines.append(f"| {k} | {spent[k]:.1f} | {share} |")
    lines += [
        "",
        f"Preprocess's CPU path alone (decode, normalise, chunk, place; no AWS calls) takes "
        f"{cpu_s * 1000:.0f} ms for the whole corpus, against {spent.get('Preprocess', 0):.1f} s "
        "spent in Preprocess states: the local pipeline is bound by the endpoint (a CPU model "
        "here) and by per-call overheads (moto, worker round-trips), not by preprocessing. "
        "pyinstrument of that CPU path (20 passes):",
        "",
        "```text",
        profile,
        "```",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=1024)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from tandem.local.cloud import LocalCloud

    t = time.monotonic()
    # Standard only (ExpressMaxBytes=0): these figures come from Standard executions' histories,
    # which Express executions do not have
    with LocalCloud(parameter_overrides={"BatchSize": str(BATCH), "ExpressMaxBytes": "0"}) as cloud:
        print(f"local cloud up in {time.monotonic() - t:.1f}s", flush=True)
        orch = orchestration(cloud, args.docs)
        print(orch, flush=True)
        cloud.jobs.drain()
        end_to_end = e2e(cloud)
        print(end_to_end, flush=True)
    if not args.no_write:
        write_section("orchestration", orch)
        write_section("e2e-local", end_to_end)


if __name__ == "__main__":
    main()
