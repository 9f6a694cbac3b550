"""Feed-rate benchmark: how many sentences/s the endpoint's CPU side can push to a GPU.

The server runs with `--backend probe-zeros` (the real tokenizer, batcher and forward thread; a
"forward pass" that returns zeros), against a moto S3 server on 127.0.0.1 in this process, on
the claim-check path: S3 read, JSONL parse, tokenize, batch, .npy, S3 write. The server's
/metrics report the CPU seconds each stage cost (thread CPU time around it), so one run gives
sentences per CPU-second of each stage: what one core sustains for it, the ceiling the server
puts on any GPU. Variants (each behind a server flag, all in this one run) give the before/after
ratio of each change; in-process measurements cover what a flag cannot isolate (padding,
response encodings, the JSONL parser). Writes the `feed-bench` section of docs/BENCHMARKS.md.

    .venv/bin/python bench/feed_bench.py [--duration 6] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench_doc import write_section
from endpoint_bench import WORDS, free_port, machine, texts_of_tokens

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GPU_TARGET = 150_000  # sentences/s of 64 tokens on one H100/H200 (issue 16)
BUCKET = "feed-bench"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Stage name in /metrics -> (label, where it runs, how much of it holds the GIL)
STAGES = {
    "s3_read": ("S3 read (boto3 get_object)", "worker thread", "most (socket reads release it)"),
    "parse": ("JSONL parse", "worker thread", "yes"),
    "tokenize": ("tokenize", "tokenizer pool", "no (Rust)"),
    "event_loop": ("event loop: HTTP, queue, bucketing", "event loop", "yes"),
    "assemble": ("batch assembly (numpy gather)", "forward thread", "yes"),
    "forward": ("forward (probe: zeros)", "forward thread", "yes"),
    "scatter": ("rows back to requests", "forward thread", "yes"),
    "npy": (".npy serialise", "worker thread", "yes"),
    "s3_write": (
        "S3 write (boto3 put_object, CRC32)",
        "worker thread",
        "most (CRC, sends release it)",
    ),
}


@dataclass
class Run:
    label: str
    flags: list[str]
    sentences: int = 0
    requests: int = 0
    errors: int = 0
    wall_s: float = 0.0
    process_cpu_s: float = 0.0
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sentences / self.wall_s if self.wall_s else 0.0

    def per_core(self, stage: str) -> float:
        s = self.stages.get(stage)
        return s["sentences"] / s["cpu_s"] if s and s["cpu_s"] > 0 else float("inf")

    def cpu_us(self, stage: str) -> float:
        s = self.stages.get(stage)
        return 1e6 * s["cpu_s"] / s["sentences"] if s and s["sentences"] else 0.0


def start_s3(kind: str = "moto") -> tuple[Any, str]:
    """moto's threaded server (here), or bench/loopback_s3.py (the GPU check: no moto there)."""
    if kind == "loopback":
        from loopback_s3 import LoopbackS3

        s3 = LoopbackS3()
        s3.start()
        return s3, s3.url
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per S3 request

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def upload_batches(s3: Any, texts: list[str], per_request: int, files: int, tag: str) -> list[str]:
    keys = []
    for f in range(files):
        start = (f * per_request) % len(texts)
        rows = [texts[(start + i) % len(texts)] for i in range(per_request)]
        lines = [json.dumps({"chunk_id": f"{tag}-{f}-{i}", "text": t}) for i, t in enumerate(rows)]
        key = f"in/{tag}/batch-{f:05d}.jsonl"
        s3.put_object(Bucket=BUCKET, Key=key, Body="\n".join(lines).encode())
        keys.append(key)
    return keys


def start_server(s3_endpoint: str, model_dir: str, flags: list[str]) -> tuple[Any, str]:
    port = free_port()
    env = {
        **os.environ,
        **AWS_ENV,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "PYTHONPATH": os.path.join(REPO, "endpoint"),
    }
    command = [sys.executable, "-m", "tandem_endpoint", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--model-dir", model_dir, "--log-level", "WARNING", "--max-queue", "1000000"]
    process = subprocess.Popen(command + flags, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # torch import, model load, warm-up, compile
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"endpoint exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("endpoint never became ready")


def process_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(
    url: str, keys: list[str], clients: int, duration_s: float
) -> tuple[int, int, int, float]:
    """Closed loop: `clients` threads, each with its own connection, posting claim checks."""
    stop_at = time.monotonic() + duration_s
    counts = [0, 0, 0]  # sentences, requests, errors
    lock = threading.Lock()

    def client(k: int) -> None:
        i = k
        with httpx.Client(base_url=url, timeout=120) as http:
            while time.monotonic() < stop_at:
                key = keys[i % len(keys)]
                body = {
                    "inputs_uri": f"s3://{BUCKET}/{key}",
                    "outputs_uri": f"s3://{BUCKET}/out/{key}.npy",
                }
                r = http.post("/invocations", json=body)
                with lock:
                    if r.status_code == 200:
                        counts[0] += r.json()["count"]
                        counts[1] += 1
                    else:
                        counts[2] += 1
                i += clients

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts[0], counts[1], counts[2], time.monotonic() - started


def diff_stages(before: dict, after: dict) -> dict[str, dict[str, float]]:
    out = {}
    for name, a in after["stages"].items():
        b = before["stages"].get(name, {"sentences": 0, "cpu_s": 0.0, "wall_s": 0.0, "calls": 0})
        out[name] = {k: a[k] - b[k] for k in ("sentences", "cpu_s", "wall_s", "calls")}
    sentences = out.get("s3_read", {}).get("sentences", 0)
    out["event_loop"] = {
        "sentences": sentences,
        "cpu_s": after["event_loop_cpu_s"] - before["event_loop_cpu_s"],
        "wall_s": 0.0,
        "calls": 0,
    }
    return out


def measure(args: argparse.Namespace, s3_endpoint: str, keys: list[str], run: Run) -> Run:
    process, url = start_server(s3_endpoint, args.model_dir, run.flags)
    try:
        drive(url, keys, args.clients, args.warmup)
        before = httpx.get(f"{url}/metrics").json()
        cpu_before = process_cpu_s(process.pid)
        run.sentences, run.requests, run.errors, run.wall_s = drive(
            url, keys, args.clients, args.duration
        )
        run.process_cpu_s = process_cpu_s(process.pid) - cpu_before
        after = httpx.get(f"{url}/metrics").json()
        run.stages = diff_stages(before, after)
        run.metrics = after
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"{run.label}: {run.rate:,.0f} sentences/s, {run.errors} errors", flush=True)
    return run


def mixed_texts(count: int, seed: int = 7) -> list[str]:
    """Texts of 4 to ~250 words, skewed short like chunked documents' tails and headings."""
    rng = random.Random(seed)
    texts = []
    for i in range(count):
        n = min(250, int(rng.lognormvariate(3.6, 0.8)) + 2)
        texts.append(" ".join(WORDS[(i + j) % len(WORDS)] for j in range(n)))
    return texts


def padding_comparison(model_dir: str) -> dict[str, dict[str, float]]:
    """In process: the same mixed-length requests through the batcher, bucketed or not."""
    from tandem_endpoint.backends.stand_ins import ProbeZerosBackend
    from tandem_endpoint.batcher import Batcher, BatchingSettings

    backend = ProbeZerosBackend(model_dir)
    texts = mixed_texts(8192)
    requests = [texts[i : i + 64] for i in range(0, len(texts), 64)]
    results = {}
    for label, buckets in (("one bucket (arrival order)", ()), ("length buckets", None)):
        settings = BatchingSettings(
            max_batch_size=0, max_batch_tokens=65536, max_wait_ms=20, max_queue=len(texts)
        )
        if buckets is not None:
            settings.length_buckets = buckets

        async def run(settings: BatchingSettings = settings) -> dict:
            batcher = Batcher(backend, settings)
            batcher.start()
            try:
                await asyncio.gather(*(batcher.embed(r) for r in requests))
                return batcher.stats.snapshot()
            finally:
                await batcher.stop()

        stats = asyncio.run(run())
        results[label] = {
            "padding_efficiency": stats["padding_efficiency"],
            "padded_tokens": stats["padded_tokens"],
            "tokens": stats["tokens"],
            "batches": stats["batches"],
        }
    return results


def encoding_comparison() -> dict[str, float]:
    """In process: µs per sentence to encode a 1024 x 384 response each way (server side)."""
    from starlette.responses import JSONResponse
    from tandem_endpoint.backends.stand_ins import FakeFastBackend
    from tandem_endpoint.server import _encode_vectors, _npy_bytes

    vectors = FakeFastBackend(dims=384).embed_texts([f"t{i}" for i in range(1024)])
    out = {}
    cases = {
        "JSON floats": lambda: JSONResponse({"outputs": _encode_vectors(vectors, "float")}),
        "JSON base64-f32": lambda: JSONResponse(
            {"outputs": _encode_vectors(vectors, "base64-f32")}
        ),
        ".npy body": lambda: _npy_bytes(vectors),
    }
    for label, fn in cases.items():
        best = min(_timed(fn) for _ in range(5))
        out[label] = 1e6 * best / len(vectors)
    return out


def parser_comparison(texts: list[str]) -> dict[str, float]:
    """In process: µs per row, the JSONL parser before (str.splitlines) and now."""
    from tandem_endpoint.server import _parse_jsonl_texts

    raw = "\n".join(json.dumps({"chunk_id": f"c{i}", "text": t}) for i, t in enumerate(texts))
    data = raw.encode()

    def before() -> list[str]:  # the parser as it was before this change
        rows = []
        for line in data.decode("utf-8-sig", errors="strict").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise ValueError(line)
            rows.append(row["text"])
        return rows

    assert before() == _parse_jsonl_texts(data)
    return {
        "before (splitlines)": 1e6 * min(_timed(before) for _ in range(5)) / len(texts),
        "now": 1e6 * min(_timed(lambda: _parse_jsonl_texts(data)) for _ in range(5)) / len(texts),
    }


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def fake_fast_scale(args: argparse.Namespace, s3: Any, s3_endpoint: str) -> dict[str, float]:
    """1,000,000 chunks through the fake-fast claim-check path, in requests of 10,000."""
    per_request, total = 10_000, args.fake_chunks
    texts = [f"fake-fast chunk {i}: orchestration scale test text" for i in range(per_request)]
    keys = upload_batches(s3, texts, per_request, 4, "fake")
    process, url = start_server(s3_endpoint, args.model_dir, ["--backend", "fake-fast"])
    try:
        cpu_before = process_cpu_s(process.pid)
        before = httpx.get(f"{url}/metrics").json()
        requests = total // per_request
        started = time.monotonic()
        done = [0]
        lock = threading.Lock()

        def client(k: int) -> None:
            with httpx.Client(base_url=url, timeout=300) as http:
                for i in range(k, requests, 2):
                    key = keys[i % len(keys)]
                    body = {
                        "inputs_uri": f"s3://{BUCKET}/{key}",
                        "outputs_uri": f"s3://{BUCKET}/out/fake-{i % 4}.npy",
                    }
                    r = http.post("/invocations", json=body)
                    r.raise_for_status()
                    with lock:
                        done[0] += r.json()["count"]

        threads = [threading.Thread(target=client, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        after = httpx.get(f"{url}/metrics").json()
        cpu = process_cpu_s(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(timeout=30)
    stages = diff_stages(before, after)
    return {
        "chunks": done[0],
        "wall_s": wall,
        "rate": done[0] / wall,
        "server_cpu_s": cpu,
        "vectors_us": 1e6 * stages["forward"]["cpu_s"] / max(1, stages["forward"]["sentences"]),
        "parse_us": 1e6 * stages["parse"]["cpu_s"] / max(1, stages["parse"]["sentences"]),
    }


def render(args: argparse.Namespace, runs: list[Run], extras: dict[str, Any]) -> str:
    main = runs[-1]
    by_label = {r.label: r for r in runs}
    lines = [
        "### Feed rate: what the endpoint's CPU side can push to a GPU (backend `probe-zeros`)",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        f"- Machine: {machine()}; the moto S3 server and the clients share these cores with "
        "the endpoint",
        f"- Load: claim-check requests of {args.per_request} texts of {args.tokens} tokens, "
        f"{args.clients} closed-loop clients, {args.duration:g} s per variant after "
        f"{args.warmup:g} s warm-up; S3 is moto on 127.0.0.1 (plain HTTP; real S3 adds TLS)",
        "- Per core = sentences / CPU-seconds that stage spent (thread CPU time around it, "
        "from the server's /metrics); GPU target: "
        f"{GPU_TARGET:,} sentences/s of 64 tokens on one H100/H200",
        "",
        f"Stages, variant `{main.label}` (server flags `{' '.join(main.flags) or 'defaults'}`):",
        "",
        "| stage | runs on | holds the GIL | CPU µs / sentence | sentences/s per core | "
        f"cores for {GPU_TARGET // 1000}k/s |",
        "|---|---|---|---:|---:|---:|",
    ]
    total_us = gil_us = 0.0
    for stage, (label, where, gil) in STAGES.items():
        if stage not in main.stages:
            continue
        us = main.cpu_us(stage)
        total_us += us
        gil_us += 0.0 if gil.startswith("no") else us
        per_core = main.per_core(stage)
        lines.append(
            f"| {label} | {where} | {gil} | {us:.2f} | "
            f"{per_core:,.0f} | {GPU_TARGET / per_core:.2f} |"
        )
    unattributed = 1e6 * main.process_cpu_s / main.sentences - total_us if main.sentences else 0
    lines += [
        f"| **all stages** | | | **{total_us:.2f}** | **{1e6 / total_us:,.0f}** | "
        f"**{GPU_TARGET * total_us / 1e6:.1f}** |",
        "",
        f"- Server process CPU, all threads: {1e6 * main.process_cpu_s / main.sentences:.2f} µs "
        f"per sentence ({unattributed:.2f} µs outside the stages: uvicorn, GC, thread hand-offs)."
        if main.sentences
        else "- no sentences measured",
        f"- Ceilings on any GPU behind one server process: tokenizing spreads over cores (Rust, "
        f"no GIL); the other stages hold the GIL for at most {gil_us:.2f} µs per sentence, so "
        f"one process feeds at least **{1e6 / gil_us:,.0f} sentences/s** before the GIL binds "
        f"(more where sockets and CRC release it); and the whole path costs "
        f"**{GPU_TARGET * total_us / 1e6:.1f} cores** of this CPU at {GPU_TARGET:,}/s, "
        f"{GPU_TARGET * main.cpu_us('tokenize') / 1e6:.1f} of them tokenizing.",
        f"- End to end on this machine: {main.rate:,.0f} sentences/s "
        f"({main.requests} requests, {main.errors} errors; mean batch "
        f"{main.metrics.get('mean_batch_size', 0)}), bound by its 2 cores.",
        "",
        "Each change against its own before, all from this run:",
        "",
        "| change | before | after | ratio |",
        "|---|---:|---:|---:|",
    ]
    full, fast = by_label["full tokenizer"], main
    lines.append(
        f"| tokenizer ASCII fast path: tokenize, sentences/s per core | "
        f"{full.per_core('tokenize'):,.0f} | {fast.per_core('tokenize'):,.0f} | "
        f"{fast.per_core('tokenize') / full.per_core('tokenize'):.2f}x |"
    )
    inline = by_label["tokenize on the event loop"]
    lines.append(
        f"| tokenize on a pool, off the event loop: end-to-end sentences/s | "
        f"{inline.rate:,.0f} | {main.rate:,.0f} | {main.rate / inline.rate:.2f}x |"
    )
    lines.append(
        f"| ... event-loop CPU µs per sentence (tokenizing there stalls HTTP for every request) | "
        f"{inline.cpu_us('event_loop'):.2f} | {main.cpu_us('event_loop'):.2f} | "
        f"{inline.cpu_us('event_loop') / max(1e-9, main.cpu_us('event_loop')):.2f}x less |"
    )
    text_cap = by_label["text cap 64"]
    lines.append(
        f"| batch cap by tokens (65,536) instead of 64 texts: mean batch, sentences | "
        f"{text_cap.metrics.get('mean_batch_size', 0)} | "
        f"{main.metrics.get('mean_batch_size', 0)} | "
        f"{main.metrics.get('mean_batch_size', 0) / max(1, text_cap.metrics.get('mean_batch_size', 1)):.1f}x |"
    )
    lines.append(
        f"| ... forward-thread CPU µs per sentence (assembly + scatter + call) | "
        f"{sum(text_cap.cpu_us(s) for s in ('assemble', 'forward', 'scatter')):.2f} | "
        f"{sum(main.cpu_us(s) for s in ('assemble', 'forward', 'scatter')):.2f} | "
        f"{sum(text_cap.cpu_us(s) for s in ('assemble', 'forward', 'scatter')) / max(1e-9, sum(main.cpu_us(s) for s in ('assemble', 'forward', 'scatter'))):.2f}x less |"
    )
    pad = extras["padding"]
    one, buck = pad["one bucket (arrival order)"], pad["length buckets"]
    lines.append(
        f"| length buckets: GPU tokens per real token, mixed lengths (8,192 texts, requests of "
        f"64) | {one['padded_tokens'] / one['tokens']:.2f} | "
        f"{buck['padded_tokens'] / buck['tokens']:.2f} | "
        f"{one['padded_tokens'] / buck['padded_tokens']:.2f}x less GPU work |"
    )
    enc = extras["encodings"]
    lines.append(
        f"| .npy instead of JSON floats: server µs per sentence to encode (1,024 x 384) | "
        f"{enc['JSON floats']:.2f} | {enc['.npy body']:.2f} | "
        f"{enc['JSON floats'] / enc['.npy body']:.0f}x |"
    )
    before_us, now_us = extras["parser"]["before (splitlines)"], extras["parser"]["now"]
    lines.append(
        "| JSONL parse: split on newlines only (also a fix: U+2028 inside a row) instead of "
        f"str.splitlines, µs per row | {before_us:.2f} | {now_us:.2f} | {before_us / now_us:.2f}x |"
    )
    lines += [
        "",
        f"(base64-f32 JSON: {enc['JSON base64-f32']:.2f} µs per sentence.) Pinned host memory "
        "and non-blocking copies only act on CUDA: `bench/gpu_check.sh` measures them on a GPU.",
    ]
    fake = extras.get("fake")
    if fake:
        lines += [
            "",
            f"`--backend fake-fast` (issue 12; no tokenizer, no batcher): {fake['chunks']:,} "
            f"chunks through the claim-check path in requests of 10,000, 2 clients: "
            f"{fake['wall_s']:.1f} s, {fake['rate']:,.0f} chunks/s end to end (moto's S3 and "
            f"the clients on the same 2 cores); vectors {fake['vectors_us']:.2f} µs and JSONL "
            f"parse {fake['parse_us']:.2f} µs of CPU per chunk.",
        ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model-dir", default=None)
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--warmup", type=float, default=1.5)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--per-request", type=int, default=1024)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--fake-chunks", type=int, default=1_000_000)
    p.add_argument("--output", default=os.path.join(REPO, "docs", "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--s3", choices=("moto", "loopback"), default="moto")
    args = p.parse_args()
    from tandem_endpoint.__main__ import default_model_dir

    args.model_dir = args.model_dir or default_model_dir()
    os.environ.update(AWS_ENV)
    moto, s3_endpoint = start_s3(args.s3)
    try:
        s3 = s3_client(s3_endpoint)
        s3.create_bucket(Bucket=BUCKET)
        texts = texts_of_tokens(args.model_dir, args.tokens, 1024)
        keys = upload_batches(s3, texts, args.per_request, 8, "feed")
        gpu_batching = ["--max-batch-size", "0", "--max-batch-tokens", "65536"]
        probe = ["--backend", "probe-zeros", *gpu_batching]
        variants = [
            Run("full tokenizer", [*probe, "--no-tokenizer-fast-path"]),
            Run("tokenize on the event loop", [*probe, "--tokenize-threads", "0"]),
            Run("text cap 64", ["--backend", "probe-zeros", "--max-batch-size", "64"]),
            Run("defaults for a GPU", probe),  # the one the stage table describes
        ]
        runs = [measure(args, s3_endpoint, keys, run) for run in variants]
        extras: dict[str, Any] = {
            "padding": padding_comparison(args.model_dir),
            "encodings": encoding_comparison(),
            "parser": parser_comparison(texts),
        }
        if args.fake_chunks:
            extras["fake"] = fake_fast_scale(args, s3, s3_endpoint)
    finally:
        moto.stop()
    section = render(args, runs, extras)
    if not args.no_write:
        write_section("feed-bench", section, Path(args.output))
    print(section)


if __name__ == "__main__":
    main()
