"""Endpoint benchmark: dynamic batching vs per-request serving (--no-batching).

Starts the endpoint twice as subprocesses, measures cold start (process start -> /ping 200),
then drives each with closed-loop clients at several concurrencies, one 64-token text per
request, for fixed-duration cells. Reports sentences/s, p50/p99 latency, mean batch size (from
/metrics), errors, and the dynamic/per-request ratio, and rewrites the endpoint section of
docs/BENCHMARKS.md.

    .venv/bin/python bench/endpoint_bench.py [--backend numpy|torch] [--duration 6]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from bench_doc import write_section

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def section_name(backend: str) -> str:
    """Each backend owns its own section of the file, so both can be reported side by side."""
    return "endpoint-bench" if backend in ("numpy", "auto") else f"endpoint-bench-{backend}"


WORDS = [
    "serverless",
    "inference",
    "pipeline",
    "batches",
    "requests",
    "onto",
    "the",
    "accelerator",
    "while",
    "step",
    "functions",
    "coordinate",
    "chunking",
    "embedding",
    "delivery",
    "retries",
    "and",
    "claim",
    "checks",
    "through",
    "object",
    "storage",
]


@dataclass
class Cell:
    mode: str
    concurrency: int
    sentences_per_s: float
    p50_ms: float
    p99_ms: float
    mean_batch: float
    errors: int
    requests: int


def texts_of_tokens(model_dir: str, tokens: int, count: int) -> list[str]:
    """`count` distinct texts that tokenize to exactly `tokens` tokens (special tokens incl.)."""
    from tandem_endpoint.backends.model_files import max_seq_length, read_config
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_seq_length(model_dir, read_config(model_dir)))
    tokenizer.no_padding()
    texts = []
    for i in range(count):
        words = [WORDS[(i + j) % len(WORDS)] for j in range(tokens)]
        while len(tokenizer.encode(" ".join(words)).ids) > tokens:
            words.pop()
        text = " ".join(words)
        while len(tokenizer.encode(text).ids) < tokens:
            text += " a"
        assert len(tokenizer.encode(text).ids) == tokens
        texts.append(text)
    return texts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, batching: bool) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    command = [sys.executable, "-m", "tandem_endpoint", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--backend", args.backend, "--log-level", "WARNING"]
    command += ["--model-dir", args.model_dir, "--max-queue", "4096"]
    if not batching:
        command.append("--no-batching")
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "endpoint")}
    started = time.monotonic()
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"endpoint exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                return process, url, time.monotonic() - started
        except httpx.TransportError:
            pass
        if time.monotonic() - started > 300:
            raise RuntimeError("endpoint never became ready")
        time.sleep(0.02)


async def drive(url: str, texts: list[str], concurrency: int, duration_s: float) -> tuple:
    """Closed loop: `concurrency` clients, each with its own keep-alive connection.

    One shared httpx pool costs O(connections) per request: at 128 connections the client
    used ~11 ms of CPU per request, most of a core on this 2-core machine, and starved the
    server it was measuring. One small client per worker costs ~1.5 ms per request at any
    concurrency.
    """
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + duration_s
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def worker(offset: int) -> None:
        nonlocal errors
        i = offset
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
            while time.monotonic() < stop_at:
                body = {"inputs": [texts[i % len(texts)]], "encoding": "base64-f16"}
                sent = time.monotonic()
                try:
                    r = await client.post("/invocations", json=body)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.monotonic() - sent)
                else:
                    errors += 1
                i += concurrency

    started = time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.monotonic() - started
    return latencies, errors, elapsed


def run_cell(url: str, mode: str, texts: list[str], concurrency: int, args) -> Cell:
    asyncio.run(drive(url, texts, concurrency, args.warmup))
    before = httpx.get(f"{url}/metrics").json()
    latencies, errors, elapsed = asyncio.run(drive(url, texts, concurrency, args.duration))
    after = httpx.get(f"{url}/metrics").json()
    batches = after["batches"] - before["batches"]
    sequences = after["sequences"] - before["sequences"]
    latencies.sort()
    return Cell(
        mode=mode,
        concurrency=concurrency,
        sentences_per_s=len(latencies) / elapsed,
        p50_ms=1000 * statistics.median(latencies) if latencies else float("nan"),
        p99_ms=1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        if latencies
        else float("nan"),
        mean_batch=sequences / batches if batches else 0.0,
        errors=errors,
        requests=len(latencies) + errors,
    )


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        gpu = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {cpu}" + (f", GPU {gpu}" if gpu else "")


def render(cells: list[Cell], cold: dict[str, float], args: argparse.Namespace) -> str:
    lines = [
        f"### Endpoint: dynamic batching vs per-request (backend `{args.backend}`)",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        f"- Machine: {machine()}",
        f"- Load: closed loop, 1 text of {args.tokens} tokens per request, {args.duration:g} s "
        f"per cell after {args.warmup:g} s warm-up; server defaults (max batch 64, max wait 10 ms)",
        f"- Cold start (process start to /ping 200): dynamic {cold['dynamic']:.2f} s, "
        f"per-request {cold['per-request']:.2f} s",
        "",
        "| concurrency | mode | sentences/s | p50 ms | p99 ms | mean batch | errors | "
        "dynamic / per-request |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(c.mode, c.concurrency): c for c in cells}
    for concurrency in args.concurrency:
        for mode in ("dynamic", "per-request"):
            c = by_key[(mode, concurrency)]
            base = by_key[("per-request", concurrency)].sentences_per_s
            ratio = f"{c.sentences_per_s / base:.2f}x" if mode == "dynamic" and base else ""
            lines.append(
                f"| {concurrency} | {mode} | {c.sentences_per_s:.1f} | {c.p50_ms:.1f} | "
                f"{c.p99_ms:.1f} | {c.mean_batch:.2f} | {c.errors} | {ratio} |"
            )
    return "\n".join(lines)


def default_model_dir() -> str:
    from tandem_endpoint.__main__ import default_model_dir as endpoint_default

    return endpoint_default()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", default="numpy", choices=("auto", "numpy", "torch"))
    p.add_argument("--model-dir", default=None)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--warmup", type=float, default=1.5)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--output", default=os.path.join(REPO, "docs", "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    args.model_dir = args.model_dir or default_model_dir()
    texts = texts_of_tokens(args.model_dir, args.tokens, 256)

    cells: list[Cell] = []
    cold: dict[str, float] = {}
    for mode, batching in (("dynamic", True), ("per-request", False)):
        process, url, cold[mode] = start_server(args, batching)
        print(f"{mode}: ready after {cold[mode]:.2f} s", flush=True)
        try:
            for concurrency in args.concurrency:
                cell = run_cell(url, mode, texts, concurrency, args)
                print(cell, flush=True)
                cells.append(cell)
        finally:
            process.terminate()
            process.wait(timeout=30)

    section = render(cells, cold, args)
    if not args.no_write:
        write_section(section_name(args.backend), section, Path(args.output))
    print(section)


if __name__ == "__main__":
    main()
