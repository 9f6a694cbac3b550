"""EndpointMode=async through the local cloud: what scale to zero costs in latency.

One LocalCloud in async mode (the local async front before the real model on the CPU) whose
front scales the model process to zero after `--idle-s` idle. Each round submits the same small
job twice: first with the model scaled to zero (the front holds the batches while the process
starts: the cold start), then at once again (warm). Figures, per round: the front's own cold
start (process start to /ping 200, the model loaded), and each job's latency from submit to a
terminal status.

    .venv/bin/python bench/async_bench.py [--rounds 3] [--docs 32] [--no-write]

Writes `<!-- async-local:start/end -->` in docs/BENCHMARKS.md. The local model process loads
in seconds; a GPU instance from zero on AWS takes minutes (`tandem cost`, prices.json
"figures", with its source).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

from bench_doc import write_section

IDLE_S = 2.0


def submit(cloud: Any, docs: int, tag: str) -> float:
    """One job of `docs` one-chunk documents; seconds from submit to its terminal status."""
    body = {
        "documents": [{"id": f"{tag}-{i}", "text": f"{tag}: document {i}."} for i in range(docs)]
    }
    req = urllib.request.Request(
        cloud.api_url + "/v1/jobs",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=60) as r:
        job_id = json.loads(r.read())["job_id"]
    job = cloud.jobs.wait(job_id, timeout=600, interval=0.1)
    if job["status"] != "SUCCEEDED":
        raise RuntimeError(f"job {job_id} ended {job['status']}")
    return time.monotonic() - t0


def scale_to_zero(front: Any, timeout: float = 120.0) -> None:
    """Let the front scale the model process in, then keep it from scaling in again (until the
    next round): the job that follows starts from zero instances, and only it."""
    front.idle_s = IDLE_S
    deadline = time.monotonic() + timeout
    while front.metrics()["instances"] and time.monotonic() < deadline:
        time.sleep(0.1)
    front.idle_s = None
    if front.metrics()["instances"]:
        raise RuntimeError("the model process did not scale to zero")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--docs", type=int, default=32, help="one chunk each (2 batches of 16)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from tandem.local.cloud import LocalCloud

    cold_jobs, warm_jobs = [], []
    with LocalCloud(
        stack_name="tandembench",
        parameter_overrides={"EndpointMode": "async"},
        schedule_interval_s=5,
    ) as cloud:
        front = cloud.async_front
        submit(cloud, args.docs, "warmup")  # the Lambda workers' own cold starts, once
        for n in range(args.rounds):
            scale_to_zero(front)
            cold_jobs.append(submit(cloud, args.docs, f"cold{n}"))
            warm_jobs.append(submit(cloud, args.docs, f"warm{n}"))
            print(f"round {n}: cold {cold_jobs[-1]:.2f} s, warm {warm_jobs[-1]:.2f} s", flush=True)
        starts = front.metrics()["cold_starts_s"]
        scale_ins = front.metrics()["scale_ins"]
    section = "\n".join(
        [
            "### Async endpoint mode, local: the cost of scale to zero",
            "",
            f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}; local cloud, EndpointMode=async, the real model on the "
            f"CPU (numpy); before each cold job the front scales it to zero ({IDLE_S:g} s idle)",
            f"- Job: {args.docs} one-chunk documents (BatchSize 16: "
            f"{-(-args.docs // 16)} batches); {args.rounds} rounds, each a job from zero "
            "instances, then the same job warm. Command: `.venv/bin/python bench/async_bench.py`",
            "",
            "| figure | median | max |",
            "|---|---:|---:|",
            f"| model process cold start (start to /ping 200), {len(starts)} times "
            f"| {statistics.median(starts):.2f} s | {max(starts):.2f} s |",
            f"| job latency from zero instances (submit to SUCCEEDED) "
            f"| {statistics.median(cold_jobs):.2f} s | {max(cold_jobs):.2f} s |",
            f"| job latency warm | {statistics.median(warm_jobs):.2f} s | {max(warm_jobs):.2f} s |",
            "",
            f"The front scaled in {scale_ins} times; while the process started it held the "
            "batches in its queue, and every job SUCCEEDED. Locally the model loads in seconds; "
            "a GPU instance from zero on AWS takes minutes (the scale-out alarm, then a new "
            "instance: `tandem cost` states the figure and its source).",
        ]
    )
    print(section)
    if not args.no_write:
        write_section("async-local", section)


if __name__ == "__main__":
    main()
