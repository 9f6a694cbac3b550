"""Prepare the folder `bench/gpu_check.sh` carries to a GPU machine with no internet.

    .venv/bin/python bench/make_gpu_carry.py [--out .venv-gpu-carry]

Makes, in about 50 MB (the device tool carries at most 64 MiB with the working tree):

- `model/`: all-MiniLM-L6-v2 with its weights cast to fp16 (safetensors, ~45 MB instead of
  ~91 MB), plus the tokenizer and sentence-transformers config files, unchanged. The GPU runs
  fp16/bf16 anyway; correctness is still checked against the committed fp32 reference.
- `site/`: the pure-Python packages the endpoint needs that the GPU image lacks (starlette,
  uvicorn, boto3, botocore, s3transfer, jmespath), copied from this venv so their versions are
  the lock's. botocore keeps only its S3 and STS service data (the rest is ~25 MB of JSON).

The default name starts with `.venv` so that git (.gitignore), ruff and mypy (pyproject.toml)
already leave it alone; name `.venv-gpu-carry` in the device tool's `carry` (ignored paths
travel only when named there).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PACKAGES = ("starlette", "uvicorn", "boto3", "botocore", "s3transfer", "jmespath")
BOTOCORE_SERVICES = ("s3", "sts")
MODEL_FILES = (
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "1_Pooling/config.json",
)


def copy_model(model_dir: str, out: str) -> None:
    import numpy as np
    from safetensors.numpy import load_file, save_file

    os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
    for name in MODEL_FILES:
        if os.path.exists(os.path.join(model_dir, name)):
            shutil.copyfile(os.path.join(model_dir, name), os.path.join(out, name))
    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    half = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in weights.items()}
    save_file(half, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})


def copy_packages(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    for name in PACKAGES:
        source = os.path.dirname(importlib.import_module(name).__file__ or "")
        target = os.path.join(out, name)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    data = os.path.join(out, "botocore", "data")
    for entry in os.listdir(data):
        if os.path.isdir(os.path.join(data, entry)) and entry not in BOTOCORE_SERVICES:
            shutil.rmtree(os.path.join(data, entry))


def size_mb(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default=os.path.join(REPO, ".venv-gpu-carry"))
    p.add_argument("--model-dir", default=None)
    args = p.parse_args()
    from tandem_endpoint.__main__ import default_model_dir

    copy_model(args.model_dir or default_model_dir(), os.path.join(args.out, "model"))
    copy_packages(os.path.join(args.out, "site"))
    print(f"{args.out}: {size_mb(args.out):.1f} MB (model {size_mb(args.out + '/model'):.1f} MB)")


if __name__ == "__main__":
    main()
