#!/usr/bin/env bash
# GPU check for the endpoint, in one go (~10 minutes) on an H100/H200 with no internet.
#
# Needs on the machine: python3 with torch (CUDA), transformers, tokenizers, safetensors, numpy,
# httpx, anyio, h11, click (the device tool's H200 image has them). Carries the rest in one
# folder made here by `.venv/bin/python bench/make_gpu_carry.py` (default .venv-gpu-carry, ~51 MB):
# the model as an fp16 copy (CARRY/model) and starlette, uvicorn, boto3, botocore (S3 data
# only), s3transfer, jmespath (CARRY/site). Then, with the device tool:
#
#   run(command="bash bench/gpu_check.sh", carry=[".venv-gpu-carry"], timeout_s=600)
#
# Steps, each with its own time limit, results under $OUT (or ./gpu-check-out):
#   1. correctness: each torch option on the committed reference texts vs the fp32 reference
#      (cosine >= 0.999), compile/CUDA graphs included;
#   2. model-only throughput by batch size and sequence length (fp16, bf16, eager, unpinned,
#      compiled);
#   3. end to end through the server's claim-check path (loopback S3), torch and probe-zeros;
#   4. nvidia-smi sampled every 500 ms throughout (nvidia-smi.csv), and the report:
#      gpu-check.md, in docs/BENCHMARKS.md form. Back here:
#      `.venv/bin/python bench/gpu_bench.py record <files_at>/gpu-check.md`.
set -uo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="${CARRY:-$REPO_DIR/.venv-gpu-carry}"
MODEL_DIR="${MODEL_DIR:-$CARRY/model}"
OUT_DIR="${OUT:-$REPO_DIR/gpu-check-out}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT_DIR"
if [[ ! -f "$MODEL_DIR/config.json" ]]; then
  echo "no model at $MODEL_DIR: run bench/make_gpu_carry.py here and carry .venv-gpu-carry" >&2
  exit 2
fi
export PYTHONPATH="$REPO_DIR/endpoint:$REPO_DIR/bench${CARRY:+:$CARRY/site}${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

echo "== environment"
"$PYTHON" --version
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c 'import torch, transformers, starlette, uvicorn, boto3; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(), "| transformers", transformers.__version__, "| starlette", starlette.__version__, "uvicorn", uvicorn.__version__, "boto3", boto3.__version__)' || exit 3

nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,power.draw,clocks.sm \
  --format=csv -lms 500 > "$OUT_DIR/nvidia-smi.csv" 2>/dev/null &
SMI_PID=$!
trap 'kill "$SMI_PID" 2>/dev/null' EXIT

status=0
echo "== 1. correctness (<= 150 s)"
timeout 150 "$PYTHON" "$REPO_DIR/bench/gpu_bench.py" correctness "$MODEL_DIR" "$OUT_DIR" || status=1
echo "== 2. model-only throughput (<= 200 s)"
timeout 200 "$PYTHON" "$REPO_DIR/bench/gpu_bench.py" model "$MODEL_DIR" "$OUT_DIR" || status=1
echo "== 3. end to end, claim-check path (<= 180 s)"
timeout 180 "$PYTHON" "$REPO_DIR/bench/gpu_bench.py" e2e "$MODEL_DIR" "$OUT_DIR" --duration 20 || status=1
echo "== 4. report"
"$PYTHON" "$REPO_DIR/bench/gpu_bench.py" report "$OUT_DIR" || status=1
exit "$status"
