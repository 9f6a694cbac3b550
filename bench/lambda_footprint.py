"""Lambda footprint: cold import time of each handler, as a ratio to `import boto3`, and sizes.

For each function this times, in fresh python3.13 processes, `import handler` with the function's
built code (`.aws-sam/build/<Function>`) and the shared layer on the path, and the function's own
environment from the template (as Lambda sets it), against a bare `import boto3` measured in the
same run (median of N runs each, interleaved so machine noise hits both alike). It also reports the unzipped size of each function artefact and of the layer.

`sam build` builds the layer for arm64; this machine is x86_64, so the timing uses an x86_64
stand-in of the same layer: the same pinned requirements installed for this machine's
python3.13 plus the built `tandem_common`, and boto3 standing in for the Lambda runtime's own.

    make build && .venv/bin/python bench/lambda_footprint.py [--runs 7]

The table is written between `<!-- lambda-footprint:start/end -->` in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_doc import write_section
from tandem_common.contracts import FUNCTIONS

from tandem.local.template import LocalTemplate

REPO = Path(__file__).resolve().parents[1]

BUILD = REPO / ".aws-sam" / "build"
STANDIN = REPO / ".aws-sam" / "footprint-standin"
PY313 = ["python3.13"]
PY313_ENV = {**os.environ, "PYENV_VERSION": "3.11.7:3.12.1:3.13.0"}
# Not in the layer: installed beside the stand-in only to show what the models cost as pydantic's
COMPARE_PYDANTIC = "pydantic==2.13.4"
# What the Lambda runtime adds to a function's own variables (the template's, resolved).
LAMBDA_ENV = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


def function_env() -> dict[str, dict[str, str]]:
    """Each function's environment as the template declares it (names resolved as a stack
    `bench` would have them; the endpoint variables empty, as in AWS)."""
    out = {}
    for mode in ("async", "realtime"):  # EndpointMode=async's functions too (its env first)
        overrides = {"EndpointMode": mode}
        functions = LocalTemplate(REPO / "template.yaml", "bench", overrides).functions()
        out.update({lid: {**spec.environment, **LAMBDA_ENV} for lid, spec in functions.items()})
    return out


def size_kb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024


def build_standin() -> tuple[Path, Path, Path]:
    """x86_64 twin of the layer, built by the same layers/common/Makefile (pinned closure,
    --no-deps, precompiled .pyc), plus boto3 in its own folder standing in for the runtime's."""
    reqs = (REPO / "layers" / "common" / "requirements.txt").read_bytes()
    makefile = (REPO / "layers" / "common" / "Makefile").read_bytes()
    key = hashlib.sha256(reqs + makefile + COMPARE_PYDANTIC.encode()).hexdigest()
    runtime = STANDIN / "runtime"
    compare = STANDIN / "pydantic"  # only for the comparison line: the layer has no pydantic
    layer = STANDIN / "layer"
    marker = STANDIN / ".ok"
    if not marker.exists() or marker.read_text() != key:
        shutil.rmtree(STANDIN, ignore_errors=True)
        subprocess.run(
            [*PY313, "-m", "pip", "install", "--quiet", "--target", str(runtime), "boto3"],
            check=True,
            env=PY313_ENV,
        )
        subprocess.run(
            [
                *PY313,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(compare),
                "pydantic==2.13.4",
            ],
            check=True,
            env=PY313_ENV,
        )
        STANDIN.mkdir(parents=True, exist_ok=True)
        marker.write_text("")
    shutil.rmtree(layer, ignore_errors=True)
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO / "layers" / "common"),
            "build-CommonLayer",
            f"ARTIFACTS_DIR={layer}",
            "PLATFORM=manylinux2014_x86_64",
        ],
        check=True,
        env=PY313_ENV,
    )
    marker.write_text(key)
    return layer / "python", runtime, compare


def time_import(statement: str, path: list[Path], env_vars: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of `statement` in a fresh process."""
    code = (
        "import time; t, c = time.perf_counter(), time.process_time(); "
        f"{statement}; print(time.perf_counter() - t, time.process_time() - c)"
    )
    # No .pyc written while measuring: /var/task and /opt are read-only in Lambda, so only the
    # bytecode shipped in the artefact counts (the layer ships it; function code is compiled).
    env = {
        **PY313_ENV,
        **env_vars,
        "PYTHONPATH": os.pathsep.join(map(str, path)),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
        if not env.get(name):
            env.pop(name, None)
    out = subprocess.run([*PY313, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{statement} failed with {path}:\n{out.stderr}")
    wall, cpu = out.stdout.split()
    return float(wall) * 1000, float(cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--output", default=str(REPO / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not (BUILD / "template.yaml").exists():
        sys.exit("run `make build` first")
    layer, runtime, compare = build_standin()
    functions = [fn for fn in FUNCTIONS if (BUILD / fn).is_dir()]
    for fn in functions:  # measure what ships: no bytecode left over from earlier runs
        for cache in (BUILD / fn).rglob("__pycache__"):
            shutil.rmtree(cache)

    # What the floor is made of: boto3 (every handler talks to AWS), then Powertools' Logger and
    # metrics (every handler logs and emits), then msgspec (the layer's models). Last, for
    # comparison only, what pydantic (not in the layer) would add: the models were pydantic's.
    logger = "from aws_lambda_powertools import Logger, single_metric"
    steps = {
        "boto3": "import boto3",
        "+ powertools": f"import boto3; {logger}",
        "+ msgspec": f"import boto3; {logger}; import msgspec, msgspec.json",
        "+ pydantic": f"import boto3; {logger}; import pydantic.main, pydantic.fields",
    }
    envs = function_env()
    samples: dict[str, list[tuple[float, float]]] = {
        **{k: [] for k in steps},
        **{f: [] for f in functions},
    }
    for _ in range(args.runs):
        for name, stmt in steps.items():
            path = [layer, runtime, *([compare] if name == "+ pydantic" else [])]
            samples[name].append(time_import(stmt, path, LAMBDA_ENV))
        for fn in functions:
            samples[fn].append(
                time_import("import handler", [BUILD / fn, layer, runtime], envs[fn])
            )
    # CPU time is what the target is judged on: on a machine shared with other work, wall time
    # also counts the time the process waited for a CPU (which hits a handler and boto3 alike
    # only on average). Wall time is shown beside it.
    median = {k: statistics.median(c for _, c in v) for k, v in samples.items()}
    wall = {k: statistics.median(w for w, _ in v) for k, v in samples.items()}
    base, wall_base = median["boto3"], wall["boto3"]

    lines = [
        "### Lambda handlers: cold import and artefact size",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs (load average "
        f"{os.getloadavg()[0]:.1f} at the end: other work shares them), python3.13 "
        "(x86_64 twin of the arm64 layer, built by the same layers/common/Makefile); median of "
        f"{args.runs} fresh processes each, interleaved; no bytecode written while measuring "
        "(read-only like Lambda: the layer's shipped .pyc count, function code compiles); "
        "times are CPU time (user + system) of the import, wall time beside it",
        f"- `import boto3` alone: {base:.0f} ms CPU ({wall_base:.0f} ms wall); the floor every "
        "handler shares: "
        f"+ Powertools Logger and metrics {median['+ powertools']:.0f} ms "
        f"({median['+ powertools'] / base:.2f}x), + msgspec (the models) "
        f"{median['+ msgspec']:.0f} ms ({median['+ msgspec'] / base:.2f}x). For comparison, "
        f"Powertools + pydantic 2.13 (not in the layer; the models were pydantic's before) "
        f"{median['+ pydantic']:.0f} ms ({median['+ pydantic'] / base:.2f}x)",
        "",
        "| function | cold import CPU ms | ratio to `import boto3` | target ≤ 1.5x "
        "| wall ms | wall ratio | unzipped code KB |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for fn in functions:
        ratio = median[fn] / base
        verdict = "met" if ratio <= 1.5 else f"missed by {(ratio - 1.5) * base:.0f} ms"
        lines.append(
            f"| {fn} | {median[fn]:.0f} | {ratio:.2f} | {verdict} | {wall[fn]:.0f} "
            f"| {wall[fn] / wall_base:.2f} | {size_kb(BUILD / fn):.1f} |"
        )
    layer_mb = size_kb(BUILD / "CommonLayer") / 1024
    lines += [
        "",
        f"Layer `CommonLayer` (arm64 build): {layer_mb:.1f} MB unzipped "
        f"(target < 20 MB: {'met' if layer_mb < 20 else 'missed'}), .pyc included.",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section("lambda-footprint", section, Path(args.output))


if __name__ == "__main__":
    main()
