"""GPU check steps, run by bench/gpu_check.sh on a CUDA machine (never run without a GPU here).

    python3 bench/gpu_bench.py correctness MODEL_DIR OUT_DIR
    python3 bench/gpu_bench.py model MODEL_DIR OUT_DIR
    python3 bench/gpu_bench.py e2e MODEL_DIR OUT_DIR [--duration 20]
    python3 bench/gpu_bench.py report OUT_DIR          # -> OUT_DIR/gpu-check.md
    .venv/bin/python bench/gpu_bench.py record FILE    # here: FILE into docs/BENCHMARKS.md

Each step writes OUT_DIR/<step>.json; `report` turns them into the `gpu-check` section of
docs/BENCHMARKS.md (sentences/s and tokens/s, model-only and end to end, against the 150k/s
target, GPU name and date), and `record` puts that section into the file here.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GPU_TARGET = 150_000
# GPU_BENCH_DEVICE=cpu GPU_BENCH_SMOKE=1: a small dry run of every step on a CPU (it proves the
# script runs; its figures mean nothing). The real check leaves both unset.
DEVICE = os.environ.get("GPU_BENCH_DEVICE", "cuda")
SMOKE = os.environ.get("GPU_BENCH_SMOKE") == "1"
CORRECTNESS: list[tuple[str, dict[str, Any]]] = [  # (label, TorchOptions kwargs)
    ("fp16 sdpa", {"dtype": "fp16"}),
    ("bf16 sdpa", {"dtype": "bf16"}),
    ("fp16 eager", {"dtype": "fp16", "attention": "eager"}),
    ("fp16 sdpa static", {"dtype": "fp16", "static_shapes": True}),
    (
        "bf16 sdpa static compile=reduce-overhead",
        {"dtype": "bf16", "static_shapes": True, "compile": "reduce-overhead"},
    ),
]
BATCHES = (8,) if SMOKE else (128, 512, 1024, 2048, 4096)
LENGTHS = (16,) if SMOKE else (32, 64, 128, 256)


def _backend(model_dir: str, **kwargs: Any) -> Any:
    from tandem_endpoint.backends import BackendOptions, TorchOptions, load_backend
    from tandem_endpoint.batcher import DEFAULT_BUCKETS

    options = BackendOptions(TorchOptions(device=DEVICE, **kwargs), widths=DEFAULT_BUCKETS)
    return load_backend("torch", model_dir, options)


def correctness(model_dir: str, out: str) -> None:
    from tandem_endpoint.backends import embed

    with open(os.path.join(REPO, "tests/fixtures/reference/texts.json"), encoding="utf-8") as f:
        texts = json.load(f)
    reference = np.load(os.path.join(REPO, "tests/fixtures/reference/embeddings.npy"))
    results: list[dict[str, Any]] = []
    for label, kwargs in CORRECTNESS[:2] if SMOKE else CORRECTNESS:
        started = time.monotonic()
        try:
            backend = _backend(model_dir, **kwargs)
            got = np.vstack([embed(backend, texts[i : i + 64]) for i in range(0, len(texts), 64)])
            cos = (got * reference).sum(1) / np.linalg.norm(got, axis=1)
            row = {"label": label, "min_cosine": float(cos.min()), "ok": bool(cos.min() >= 0.999)}
        except Exception as exc:  # noqa: BLE001 - a failed option is a row of the report
            row = {"label": label, "error": f"{type(exc).__name__}: {exc}"[:300], "ok": False}
        row["seconds"] = round(time.monotonic() - started, 1)
        print(row, flush=True)
        results.append(row)
    _dump(out, "correctness", results)


def _tokens(rows: int, width: int) -> Any:
    from tandem_endpoint.backends.tokens import Tokens

    rng = np.random.default_rng(rows * 1000 + width)
    ids = rng.integers(1000, 29000, size=(rows, width), dtype=np.int32)
    ids[:, 0], ids[:, -1] = 101, 102
    return Tokens(ids, np.full(rows, width, dtype=np.int32))


def _time_forward(backend: Any, tokens: Any, budget_s: float = 1.5) -> float:
    """Seconds per backend.forward (ids to host vectors, copies included), after warm-up."""
    for _ in range(2):
        backend.forward(tokens)
    started, n = time.perf_counter(), 0
    while n < 3 or (time.perf_counter() - started < budget_s and n < 50):
        backend.forward(tokens)
        n += 1
    return (time.perf_counter() - started) / n


def model(model_dir: str, out: str) -> None:
    results: list[dict[str, Any]] = []
    variants: list[tuple[str, dict[str, Any], tuple[int, ...], tuple[int, ...]]] = [
        ("fp16 sdpa", {"dtype": "fp16"}, BATCHES, LENGTHS),
        ("bf16 sdpa", {"dtype": "bf16"}, BATCHES, LENGTHS),
        ("fp16 eager", {"dtype": "fp16", "attention": "eager"}, (1024,), (64,)),
        (
            "fp16 sdpa, no pinned memory",
            {"dtype": "fp16", "pin_memory": False},
            (1024, 4096),
            (64,),
        ),
        (
            "bf16 sdpa static compile=reduce-overhead",
            {"dtype": "bf16", "static_shapes": True, "compile": "reduce-overhead"},
            (1024, 4096),
            (64,),
        ),
    ]
    for label, kwargs, batches, lengths in variants[:2] if SMOKE else variants:
        try:
            backend = _backend(model_dir, **kwargs)
        except Exception as exc:  # noqa: BLE001
            results.append({"label": label, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        for width in lengths:
            for rows in batches:
                try:
                    s = _time_forward(backend, _tokens(rows, width))
                    row = {
                        "label": label,
                        "rows": rows,
                        "width": width,
                        "ms": s * 1000,
                        "sentences_per_s": rows / s,
                        "tokens_per_s": rows * width / s,
                    }
                except Exception as exc:  # noqa: BLE001
                    row = {
                        "label": label,
                        "rows": rows,
                        "width": width,
                        "error": f"{type(exc).__name__}: {exc}"[:300],
                    }
                print(row, flush=True)
                results.append(row)
        del backend
    _dump(out, "model", results)


class SmiSampler:
    """nvidia-smi every 200 ms while a measurement runs: mean GPU utilisation and power."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = [
            "nvidia-smi",
            "--query-gpu=utilization.gpu,power.draw",
            "--format=csv,noheader,nounits",
        ]
        while not self._stop.is_set():
            try:
                line = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout
                util, power = (float(x) for x in line.strip().split(",")[:2])
                self.samples.append((util, power))
            except (OSError, ValueError, subprocess.SubprocessError):
                pass
            self._stop.wait(0.2)

    def __enter__(self) -> SmiSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {}
        util = [u for u, _ in self.samples]
        return {
            "gpu_util_mean": float(np.mean(util)),
            "gpu_util_p50": float(np.median(util)),
            "power_w_mean": float(np.mean([p for _, p in self.samples])),
            "samples": len(self.samples),
        }


def e2e(model_dir: str, out: str, duration: float = 20.0) -> None:
    """The claim-check path through the real server: loopback S3, 4096 texts of 64 tokens per
    request, 16 clients; the torch backend, then probe-zeros (this host's feed ceiling)."""
    import argparse

    from endpoint_bench import texts_of_tokens
    from feed_bench import AWS_ENV, BUCKET, Run, measure, s3_client, start_s3, upload_batches

    os.environ.update(AWS_ENV)
    server, endpoint = start_s3("loopback")
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket=BUCKET)
    per_request = 64 if SMOKE else 4096
    texts = texts_of_tokens(model_dir, 64, per_request)
    keys = upload_batches(s3, texts, per_request, 16, "gpu")
    clients, warmup = (2, 0.5) if SMOKE else (16, 5.0)
    args = argparse.Namespace(
        model_dir=model_dir, clients=clients, warmup=warmup, duration=duration
    )
    batching = ["--max-batch-size", "0", "--max-batch-tokens", "65536", "--max-wait-ms", "5"]
    runs = [
        (
            "torch fp16 sdpa",
            [
                "--backend",
                "torch",
                "--torch-dtype",
                "fp16",
                "--warmup",
                "on",
                "--torch-device",
                DEVICE,
            ],
        ),
        (
            "torch bf16 sdpa",
            [
                "--backend",
                "torch",
                "--torch-dtype",
                "bf16",
                "--warmup",
                "on",
                "--torch-device",
                DEVICE,
            ],
        ),
        ("probe-zeros (feed ceiling)", ["--backend", "probe-zeros"]),
    ]
    results: list[dict[str, Any]] = []
    try:
        for label, flags in runs[1:] if SMOKE else runs:
            run = Run(label, [*flags, *batching])
            with SmiSampler() as smi:
                try:
                    measure(args, endpoint, keys, run)
                    row = {
                        "label": label,
                        "sentences_per_s": run.rate,
                        "tokens_per_s": run.rate * 64,
                        "errors": run.errors,
                        "requests": run.requests,
                        "mean_batch": run.metrics.get("mean_batch_size"),
                        "process_cpu_cores": run.process_cpu_s / run.wall_s,
                        "stages_cpu_us": {k: run.cpu_us(k) for k in run.stages},
                    }
                except Exception as exc:  # noqa: BLE001
                    row = {"label": label, "error": f"{type(exc).__name__}: {exc}"[:300]}
            row.update(smi.summary())
            print(row, flush=True)
            results.append(row)
    finally:
        server.stop()
    _dump(out, "e2e", results)


def report(out: str) -> str:
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
        gpu = subprocess.run(query, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        gpu = ""
    import torch

    lines = [
        "### GPU check: torch backend on a GPU (`bench/gpu_check.sh`)",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        f"- GPU: {gpu or 'unknown'}; torch {torch.__version__}, CUDA {torch.version.cuda}; "
        f"{os.cpu_count()} CPUs; model: fp16 copy of all-MiniLM-L6-v2 "
        "(bench/make_gpu_carry.py)",
        f"- Target: {GPU_TARGET:,} sentences/s of 64 tokens, end to end, cosine >= 0.999",
        *(
            ["- **CPU dry run (GPU_BENCH_DEVICE=cpu): these are not GPU figures**"]
            if DEVICE != "cuda" or SMOKE
            else []
        ),
        "",
        "| correctness vs the fp32 reference | min cosine | ok |",
        "|---|---:|---|",
    ]
    for row in _load(out, "correctness"):
        cos = f"{row['min_cosine']:.6f}" if "min_cosine" in row else row.get("error", "")
        lines.append(f"| {row['label']} | {cos} | {'yes' if row['ok'] else '**no**'} |")
    lines += [
        "",
        "Model only (`TorchBackend.forward`: ids in, host vectors out, copies included):",
        "",
        "| variant | batch | tokens | ms | sentences/s | tokens/s | vs target |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in _load(out, "model"):
        if "error" in row:
            lines.append(
                f"| {row['label']} | {row.get('rows', '')} | {row.get('width', '')} "
                f"| error: {row['error']} | | | |"
            )
            continue
        lines.append(
            f"| {row['label']} | {row['rows']} | {row['width']} | {row['ms']:.2f} | "
            f"{row['sentences_per_s']:,.0f} | {row['tokens_per_s'] / 1e6:.2f}M | "
            f"{row['sentences_per_s'] / GPU_TARGET:.2f}x |"
        )
    lines += [
        "",
        "End to end, claim-check path (loopback S3, requests of 4,096 texts of 64 tokens, "
        "16 clients):",
        "",
        "| server | sentences/s | tokens/s | vs target | mean batch | GPU util % | "
        "server CPU cores | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in _load(out, "e2e"):
        if "error" in row:
            lines.append(f"| {row['label']} | error: {row['error']} | | | | | | |")
            continue
        lines.append(
            f"| {row['label']} | {row['sentences_per_s']:,.0f} | "
            f"{row['tokens_per_s'] / 1e6:.2f}M | "
            f"{row['sentences_per_s'] / GPU_TARGET:.2f}x | {row['mean_batch']} | "
            f"{row.get('gpu_util_mean', float('nan')):.0f} | "
            f"{row['process_cpu_cores']:.1f} | {row['errors']} |"
        )
    section = "\n".join(lines)
    Path(out, "gpu-check.md").write_text(section + "\n")
    return section


def _dump(out: str, name: str, data: Any) -> None:
    os.makedirs(out, exist_ok=True)
    Path(out, f"{name}.json").write_text(json.dumps(data, indent=1))


def _load(out: str, name: str) -> list[dict[str, Any]]:
    path = Path(out, f"{name}.json")
    return json.loads(path.read_text()) if path.exists() else []


def main() -> None:
    step, rest = sys.argv[1], sys.argv[2:]
    if step == "correctness":
        correctness(rest[0], rest[1])
    elif step == "model":
        model(rest[0], rest[1])
    elif step == "e2e":
        duration = float(rest[rest.index("--duration") + 1]) if "--duration" in rest else 20.0
        e2e(rest[0], rest[1], duration)
    elif step == "report":
        print(report(rest[0]))
    elif step == "record":
        from bench_doc import write_section

        write_section("gpu-check", Path(rest[0]).read_text().rstrip("\n"))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
