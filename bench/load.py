"""Load test against the local cloud: N jobs through the API, S3 and SQS entry paths at once.

    .venv/bin/python bench/load.py                      # 1,000 jobs x 5 documents (5,000 documents)
    .venv/bin/python bench/load.py --jobs 100 --docs-per-job 5 --no-write

It starts its own LocalCloud (loopback only: every server binds 127.0.0.1), submits the jobs
round-robin over the three entry paths with a bounded number of submitting threads, then waits
(under an overall time limit) until every job is terminal. It then checks:

- every job reached SUCCEEDED, PARTIAL or FAILED (none stuck);
- every document is accounted for: its id is in the job's result shards, or in
  `result/failures.jsonl` with a non-empty reason (none lost);
- each job has exactly one record and one execution (the execution name is the job id), and no
  job exists that the run did not submit (no duplicates).

It reports jobs/s, documents/s and p50/p99 job latency (submit -> terminal, as seen by polling
the jobs table every `--poll` seconds) and writes them to docs/RELIABILITY.md between
`<!-- load:start -->` and `<!-- load:end -->` (unless `--no-write`). Exit status 1 when a check
fails or the time limit passes first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tandem_common.contracts import TERMINAL_STATUSES as TERMINAL
from tandem_common.contracts import deterministic_job_id, s3_job_id, s3_revision

from tandem.local.cloud import LocalCloud

ROOT = Path(__file__).resolve().parents[1]

DOC_FILE = ROOT / "docs" / "RELIABILITY.md"
START, END = "<!-- load:start -->", "<!-- load:end -->"
PATHS = ("api", "s3", "sqs")
SENTENCES = [
    "The tide rises at dawn and the harbour wakes.",
    "Graviton functions chunk the text before the GPU sees it.",
    "A quiet library keeps its oldest maps in the basement.",
    "Lanterns swing above the night market stalls.",
    "The orchard was planted the year the bridge opened.",
]


@dataclass
class Job:
    index: int
    path: str
    doc_ids: list[str]
    job_id: str = ""
    submitted: float = 0.0
    terminal_at: float | None = None
    status: str | None = None
    submit_error: str | None = None


@dataclass
class Report:
    jobs: list[Job]
    started: float
    submitted_by: float = 0.0
    finished: float = 0.0
    timed_out: bool = False
    problems: dict[str, list[str]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    embedded_docs: int = 0
    failed_docs: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)


def documents(run: str, index: int, n: int) -> list[dict[str, str]]:
    return [
        {
            "id": f"{run}-j{index}-d{i}",
            "text": f"Load document {index}.{i}. {SENTENCES[(index + i) % len(SENTENCES)]}",
        }
        for i in range(n)
    ]


def submit(cloud: LocalCloud, clients: dict[str, Any], run: str, job: Job, n_docs: int) -> None:
    docs = documents(run, job.index, n_docs)
    job.submitted = time.monotonic()
    try:
        if job.path == "api":
            key = f"{run}-{job.index}"
            req = urllib.request.Request(
                cloud.api_url + "/v1/jobs",
                data=json.dumps({"documents": docs}).encode(),
                method="POST",
                headers={"content-type": "application/json", "Idempotency-Key": key},
            )
            with urllib.request.urlopen(req, timeout=120) as r:
                body = json.loads(r.read())
            job.job_id = body["job_id"]
            assert job.job_id == deterministic_job_id("api", key)
        elif job.path == "s3":
            key = f"inbox/load/{run}/job-{job.index}.jsonl"
            data = "".join(json.dumps(d) + "\n" for d in docs).encode()
            put = clients["s3"].put_object(Bucket=cloud.bucket, Key=key, Body=data)
            job.job_id = s3_job_id(
                cloud.bucket, key, s3_revision(put.get("VersionId"), put["ETag"])
            )
        else:
            job.job_id = str(uuid.uuid4())
            clients["sqs"].send_message(
                QueueUrl=cloud.queue_url,
                MessageBody=json.dumps({"job_id": job.job_id, "documents": docs}),
            )
    except Exception as exc:  # noqa: BLE001 - a failed submission is a reported problem
        job.submit_error = f"{type(exc).__name__}: {exc}"


def scan_jobs(cloud: LocalCloud) -> dict[str, dict[str, Any]]:
    ddb = cloud.client("dynamodb")
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {
        "TableName": cloud.jobs_table,
        "ConsistentRead": True,
        "ProjectionExpression": "job_id, #s, created_at",
        "ExpressionAttributeNames": {"#s": "status"},
    }
    while True:
        page = ddb.scan(**kwargs)
        for it in page["Items"]:
            items[it["job_id"]["S"]] = {
                "status": it["status"]["S"],
                "created_at": it.get("created_at", {}).get("S", ""),
            }
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def jsonl(s3: Any, bucket: str, key: str) -> list[dict[str, Any]] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return [json.loads(x) for x in body.splitlines() if x.strip()]


def verify(cloud: LocalCloud, report: Report, before: set[str]) -> None:
    s3 = cloud.client("s3")
    problems = report.problems
    for job in report.jobs:
        if job.submit_error:
            problems.setdefault("submit_errors", []).append(f"{job.index}: {job.submit_error}")
            continue
        if job.status not in TERMINAL:
            problems.setdefault("stuck", []).append(f"{job.job_id} ({job.path}): {job.status}")
            continue
        prefix = f"jobs/{job.job_id}/result/"
        vectors = cloud.jobs.result_rows(job.job_id)
        failures = jsonl(s3, cloud.bucket, prefix + "failures.jsonl") or []
        embedded = {r["document_id"] for r in vectors}
        failed = {f["id"]: f.get("reason") for f in failures}
        for f in failures:
            report.failure_reasons[str(f.get("reason"))[:80]] += 1
        for doc_id in job.doc_ids:
            if doc_id in embedded:
                report.embedded_docs += 1
            elif failed.get(doc_id):
                report.failed_docs += 1
            else:
                problems.setdefault("lost_documents", []).append(f"{job.job_id}/{doc_id}")
        report.statuses[str(job.status)] += 1
    # duplicates: one job record and one execution per submitted job, no extra jobs
    ids = [j.job_id for j in report.jobs if j.job_id]
    for job_id, n in Counter(ids).items():
        if n > 1:
            problems.setdefault("duplicate_job_ids", []).append(f"{job_id} x{n}")
    after = scan_jobs(cloud)
    extra = set(after) - before - set(ids)
    if extra:
        problems.setdefault("unexpected_jobs", []).extend(sorted(extra))
    # Standard executions from ListExecutions; Express ones (which no Step Functions API lists,
    # on AWS or here) from the local cloud's own bookkeeping
    sfn = cloud.client("stepfunctions")
    names: Counter[str] = Counter()
    for page in sfn.get_paginator("list_executions").paginate(
        stateMachineArn=cloud.state_machine_arn
    ):
        names.update(e["name"] for e in page["executions"])
    express: Counter[str] = Counter(r["name"] for r in cloud.jobs.express_executions())
    for job_id in ids:
        # one execution per job; an Express job handed to Standard has one of each
        standard, fast = names[job_id], express[job_id]
        if not (standard <= 1 and fast <= 1 and standard + fast >= 1):
            problems.setdefault("executions_not_one", []).append(
                f"{job_id}: {standard} Standard, {fast} Express"
            )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarise(report: Report, args: argparse.Namespace, cloud: LocalCloud) -> dict[str, Any]:
    n_jobs = len(report.jobs)
    n_docs = sum(len(j.doc_ids) for j in report.jobs)
    lat = sorted(j.terminal_at - j.submitted for j in report.jobs if j.terminal_at is not None)
    wall = report.finished - report.started
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "jobs": n_jobs,
        "documents": n_docs,
        "docs_per_job": args.docs_per_job,
        "paths": dict(Counter(j.path for j in report.jobs)),
        "submit_concurrency": args.concurrency,
        "max_in_flight": args.max_in_flight,
        "local_parameters": "BatchSize 16, MapMaxConcurrency 2 (LocalCloud defaults)",
        "submit_s": round(report.submitted_by - report.started, 1),
        "wall_s": round(wall, 1),
        "jobs_per_s": round(n_jobs / wall, 2) if wall else 0,
        "documents_per_s": round(n_docs / wall, 1) if wall else 0,
        "latency_p50_s": round(percentile(lat, 50), 1),
        "latency_p99_s": round(percentile(lat, 99), 1),
        "latency_max_s": round(lat[-1], 1) if lat else None,
        "statuses": dict(report.statuses),
        "documents_embedded": report.embedded_docs,
        "documents_failed_with_reason": report.failed_docs,
        "failure_reasons": dict(report.failure_reasons.most_common(5)),
        "documents_lost": len(report.problems.get("lost_documents", [])),
        "duplicates": len(report.problems.get("duplicate_job_ids", []))
        + len(report.problems.get("unexpected_jobs", []))
        + len(report.problems.get("executions_not_one", [])),
        "stuck_jobs": len(report.problems.get("stuck", [])),
        "submit_errors": len(report.problems.get("submit_errors", [])),
        "timed_out": report.timed_out,
        "endpoint_metrics": _metrics(cloud),
    }


def _metrics(cloud: LocalCloud) -> dict[str, Any]:
    try:
        m = cloud.endpoint.metrics()
    except OSError:
        return {}
    return {k: v for k, v in m.items() if isinstance(v, int | float)}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def write_doc(summary: dict[str, Any], passed: bool) -> None:
    s = summary
    block = f"""{START}
Measured {s["date"]} on {s["machine"]}; endpoint: the real model on the CPU (numpy backend),
{s["local_parameters"]}. Command: `.venv/bin/python bench/load.py --jobs {s["jobs"]} --docs-per-job {s["docs_per_job"]} --concurrency {s["submit_concurrency"]} --max-in-flight {s["max_in_flight"]}`.

| figure | value |
|---|---|
| jobs submitted (api / s3 / sqs) | {s["jobs"]} ({" / ".join(str(s["paths"].get(p, 0)) for p in PATHS)}) |
| documents submitted | {s["documents"]} |
| result | {"PASS" if passed else "FAIL"}{" (time limit hit)" if s["timed_out"] else ""} |
| job statuses | {", ".join(f"{k} {v}" for k, v in sorted(s["statuses"].items()))} |
| documents embedded / failed with a reason | {s["documents_embedded"]} / {s["documents_failed_with_reason"]} |
| **documents lost** | **{s["documents_lost"]}** |
| **duplicate jobs or executions** | **{s["duplicates"]}** |
| **stuck (non-terminal) jobs** | **{s["stuck_jobs"]}** |
| submit phase | {s["submit_s"]} s |
| wall time (first submit to last terminal) | {s["wall_s"]} s |
| jobs/s | {s["jobs_per_s"]} |
| documents/s | {s["documents_per_s"]} |
| job latency p50 / p99 / max (submit to terminal) | {s["latency_p50_s"]} s / {s["latency_p99_s"]} s / {s["latency_max_s"]} s |

{END}"""
    text = (
        DOC_FILE.read_text()
        if DOC_FILE.exists()
        else f"# Reliability\n\n## Load\n\n{START}\n{END}\n"
    )
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    DOC_FILE.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--docs-per-job", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16, help="submitting threads")
    ap.add_argument(
        "--max-in-flight",
        type=int,
        default=100,
        help="submitted but not yet terminal jobs at most (backpressure, like a real client)",
    )
    ap.add_argument("--time-limit", type=float, default=1800.0, help="seconds, overall")
    ap.add_argument("--poll", type=float, default=2.0)
    ap.add_argument("--no-write", action="store_true", help="do not update docs/RELIABILITY.md")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    args = ap.parse_args(argv)

    run = f"load{uuid.uuid4().hex[:8]}"
    jobs = [
        Job(i, PATHS[i % len(PATHS)], [d["id"] for d in documents(run, i, args.docs_per_job)])
        for i in range(args.jobs)
    ]
    log_dir = ROOT / ".tandem" / "sessions" / f"{run}"
    print(f"starting the local cloud (logs: {log_dir})", flush=True)
    with LocalCloud(log_dir=log_dir) as cloud:
        for url in (cloud.api_url, cloud.lambda_url, cloud.moto_url, cloud.endpoint_url):
            assert url.startswith("http://127.0.0.1:"), url  # loopback only
        before = set(scan_jobs(cloud))
        clients = {"s3": cloud.client("s3"), "sqs": cloud.client("sqs")}
        report = Report(jobs=jobs, started=time.monotonic())
        deadline = report.started + args.time_limit
        print(f"submitting {args.jobs} jobs x {args.docs_per_job} documents", flush=True)

        done = threading.Event()

        window = threading.Semaphore(args.max_in_flight)

        def submit_one(job: Job) -> None:
            window.acquire()  # released by the poll loop when the job is terminal
            submit(cloud, clients, run, job, args.docs_per_job)
            if job.submit_error:
                window.release()

        def submit_all() -> None:
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(submit_one, jobs))
            report.submitted_by = time.monotonic()
            done.set()

        threading.Thread(target=submit_all, daemon=True).start()
        by_id: dict[str, Job] = {}
        last_print = 0.0
        while True:
            now = time.monotonic()
            for j in jobs:
                if j.job_id and j.job_id not in by_id:
                    by_id[j.job_id] = j
            seen = scan_jobs(cloud)
            now = time.monotonic()
            for job_id, item in seen.items():
                found = by_id.get(job_id)
                if found is not None:
                    found.status = item["status"]
                    if found.terminal_at is None and item["status"] in TERMINAL:
                        found.terminal_at = now
                        window.release()
            n_term = sum(1 for j in jobs if j.terminal_at is not None)
            n_err = sum(1 for j in jobs if j.submit_error)
            if now - last_print > 10:
                print(
                    f"  t={now - report.started:6.0f}s submitted={len(by_id)} terminal={n_term} "
                    f"submit_errors={n_err}",
                    flush=True,
                )
                last_print = now
            if done.is_set() and n_term + n_err >= len(jobs):
                break
            if now > deadline:
                report.timed_out = True
                break
            time.sleep(args.poll)
        report.finished = max((j.terminal_at or 0.0) for j in jobs) or time.monotonic()
        try:
            cloud.jobs.drain(timeout=60)
        except TimeoutError:
            print("warning: executions still running after the last terminal job", flush=True)
        verify(cloud, report, before)
        summary = summarise(report, args, cloud)
    passed = not report.timed_out and not any(report.problems.values())
    print(json.dumps(summary, indent=2))
    for name, items in report.problems.items():
        print(f"PROBLEM {name}: {len(items)} e.g. {items[:5]}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if not args.no_write:
        write_doc(summary, passed)
        print(f"wrote {DOC_FILE.relative_to(ROOT)}")
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
