"""Lambda footprint: cold import time of each handler, as a ratio to `import boto3`, and sizes.

For each function this times, in fresh python3.13 processes, `import handler` with the function's
built code (`.aws-sam/build/<Function>`) and the shared layer on the path, against a bare
`import boto3` measured in the same run (median of N runs each, interleaved so machine noise hits
both alike). It also reports the unzipped size of each function artefact and of the layer.

`sam build` builds the layer for arm64; this machine is x86_64, so the timing uses an x86_64
stand-in of the same layer: the same pinned requirements installed for this machine's
python3.13 plus the built `tandem_common`, and boto3 standing in for the Lambda runtime's own.

    make build && .venv/bin/python bench/lambda_footprint.py [--runs 7]

The table is written between `<!-- lambda-footprint:start/end -->` in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / ".aws-sam" / "build"
STANDIN = REPO / ".aws-sam" / "footprint-standin"
FUNCTIONS = [
    "ApiFunction",
    "IngestFunction",
    "PreprocessFunction",
    "DeliverFunction",
    "FailFunction",
]
START, END = "<!-- lambda-footprint:start -->", "<!-- lambda-footprint:end -->"
PY313 = ["python3.13"]
PY313_ENV = {**os.environ, "PYENV_VERSION": "3.11.7:3.12.1:3.13.0"}
# What the Lambda runtime environment sets; keeps Powertools' behaviour as in AWS.
LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "DATA_BUCKET": "bench-bucket",
    "JOBS_TABLE": "bench-jobs",
    "IDEMPOTENCY_TABLE": "bench-idem",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:bench",
    "ENDPOINT_NAME": "bench",
    "POWERTOOLS_SERVICE_NAME": "tandem",
    "POWERTOOLS_METRICS_NAMESPACE": "Tandem",
}


def size_kb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024


def build_standin() -> Path:
    """x86_64 copy of the layer: same requirements for this machine, plus boto3 (the runtime's)."""
    marker = STANDIN / ".ok"
    if not marker.exists():
        shutil.rmtree(STANDIN, ignore_errors=True)
        reqs = REPO / "layers" / "common" / "requirements.txt"
        subprocess.run(
            [
                *PY313,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(STANDIN),
                "-r",
                str(reqs),
                "boto3",
            ],
            check=True,
            env=PY313_ENV,
        )
        marker.touch()
    shutil.rmtree(STANDIN / "tandem_common", ignore_errors=True)
    shutil.copytree(BUILD / "CommonLayer" / "python" / "tandem_common", STANDIN / "tandem_common")
    return STANDIN


def time_import(statement: str, path: list[Path]) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = {**PY313_ENV, **LAMBDA_ENV, "PYTHONPATH": os.pathsep.join(map(str, path))}
    env.pop("AWS_ENDPOINT_URL", None)
    out = subprocess.run([*PY313, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{statement} failed with {path}:\n{out.stderr}")
    return float(out.stdout.strip()) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--output", default=str(REPO / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not (BUILD / "template.yaml").exists():
        sys.exit("run `make build` first")
    standin = build_standin()

    samples: dict[str, list[float]] = {"boto3": [], **{f: [] for f in FUNCTIONS}}
    for _ in range(args.runs):
        samples["boto3"].append(time_import("import boto3", [standin]))
        for fn in FUNCTIONS:
            samples[fn].append(time_import("import handler", [BUILD / fn, standin]))
    median = {k: statistics.median(v) for k, v in samples.items()}

    lines = [
        "### Lambda handlers: cold import and artefact size",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs, python3.13 "
        f"(x86_64 stand-in of the arm64 layer); median of {args.runs} fresh processes each",
        f"- `import boto3` alone: {median['boto3']:.0f} ms",
        "",
        "| function | cold import ms | ratio to `import boto3` | unzipped code KB |",
        "|---|---:|---:|---:|",
    ]
    for fn in FUNCTIONS:
        ratio = median[fn] / median["boto3"]
        lines.append(f"| {fn} | {median[fn]:.0f} | {ratio:.2f} | {size_kb(BUILD / fn):.1f} |")
    layer_mb = size_kb(BUILD / "CommonLayer") / 1024
    lines += ["", f"Layer `CommonLayer` (arm64 build): {layer_mb:.1f} MB unzipped."]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        path = Path(args.output)
        content = path.read_text() if path.exists() else "# Benchmarks\n"
        block = f"{START}\n{section}\n{END}"
        if START in content:
            head, rest = content.split(START, 1)
            content = head + block + rest.split(END, 1)[1]
        else:
            content = content.rstrip("\n") + "\n\n" + block + "\n"
        path.write_text(content)


if __name__ == "__main__":
    main()
