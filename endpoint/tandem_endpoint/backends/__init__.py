"""Embedding backends behind one small interface, and the choice between them."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np

log = logging.getLogger("tandem_endpoint.backends")


class Backend(Protocol):
    """What the server needs from a model: L2-normalised float32 sentence embeddings."""

    name: str
    dims: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts`, returning float32 `[len(texts), dims]`, rows in input order."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text after truncation, special tokens included."""
        ...


def _nvidia_device_present() -> bool:
    # Cheap pre-check so a CPU host never pays torch's import time just to learn "no CUDA".
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidia0")


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None or not _nvidia_device_present():
        return False
    import torch

    return bool(torch.cuda.is_available())


def load_backend(kind: str, model_dir: str) -> Backend:
    """Build the backend named by `kind` (`auto`, `numpy` or `torch`) from `model_dir`."""
    if kind == "auto":
        kind = "torch" if cuda_available() else "numpy"
    log.info("loading backend", extra={"backend": kind, "model_dir": model_dir})
    if kind == "numpy":
        from tandem_endpoint.backends.numpy_backend import NumpyBertBackend

        return NumpyBertBackend(model_dir)
    if kind == "torch":
        from tandem_endpoint.backends.torch_backend import TorchBackend

        # fp16 on CUDA; float32 on the CPU (used to compare CPU backends in bench/).
        return TorchBackend(model_dir, device="cuda" if cuda_available() else "cpu")
    raise ValueError(f"unknown backend {kind!r}")
