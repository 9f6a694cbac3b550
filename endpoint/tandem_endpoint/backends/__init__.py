"""Embedding backends behind one small interface, and the choice between them.

A model backend splits embedding in two, so that each text is tokenized exactly once:
`tokenize` (thread-safe, run on the server's tokenizer pool, off the event loop) and `forward`
(one batch of `Tokens`, run by the batcher on its forward thread).

A `DirectBackend` (the `fake-fast` stand-in) has neither: the server calls its `embed_texts`
straight from the request's worker thread, with no tokenizer and no batcher.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from tandem_endpoint.backends.tokens import Tokens

log = logging.getLogger("tandem_endpoint.backends")

MODEL_BACKENDS = ("auto", "numpy", "torch")
STAND_INS = ("probe-zeros", "fake-fast")  # not models: for benchmarks and orchestration tests
BACKENDS = MODEL_BACKENDS + STAND_INS


class Backend(Protocol):
    """What the server needs from a model: L2-normalised float32 sentence embeddings."""

    name: str
    dims: int

    def tokenize(self, texts: Sequence[str]) -> Tokens:
        """Token ids of `texts` after truncation, special tokens included. Thread-safe."""
        ...

    def forward(self, tokens: Tokens) -> np.ndarray:
        """Embed one batch, returning float32 `[len(tokens), dims]`, rows in input order."""
        ...


@runtime_checkable
class DirectBackend(Protocol):
    """A stand-in that needs no tokens and no batching: vectors straight from the texts."""

    name: str
    dims: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class TorchOptions:
    """Options of the torch backend; the defaults are the safe ones (see endpoint/README.md)."""

    dtype: str = "auto"  # auto (fp16 on CUDA, fp32 on the CPU) | fp16 | bf16 | fp32
    attention: str = "sdpa"  # sdpa (torch scaled_dot_product_attention) | eager
    compile: str = "none"  # none | default | reduce-overhead (CUDA graphs) | max-autotune
    static_shapes: bool = False  # pad rows to a power of two and width to a bucket edge
    pin_memory: bool = True  # pinned host buffers + non-blocking copies (CUDA only)
    device: str = "auto"  # auto | cuda | cpu


@dataclass
class BackendOptions:
    torch: TorchOptions = field(default_factory=TorchOptions)
    ascii_fast_path: bool = True  # tokenizer fast path for printable ASCII (same ids)
    widths: tuple[int, ...] = ()  # batch widths the batcher pads to (static shapes, warm-up)
    warmup_shapes: tuple[tuple[int, int], ...] = ()  # (rows, width) run once before /ping is 200


def _nvidia_device_present() -> bool:
    # Cheap pre-check so a CPU host never pays torch's import time just to learn "no CUDA".
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidia0")


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None or not _nvidia_device_present():
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_kind(kind: str) -> str:
    return ("torch" if cuda_available() else "numpy") if kind == "auto" else kind


def load_backend(
    kind: str, model_dir: str, options: BackendOptions | None = None
) -> Backend | DirectBackend:
    """Build the backend named by `kind` (one of `BACKENDS`) from `model_dir`."""
    options = options or BackendOptions()
    kind = resolve_kind(kind)
    log.info("loading backend", extra={"backend": kind, "model_dir": model_dir})
    if kind == "numpy":
        from tandem_endpoint.backends.numpy_backend import NumpyBertBackend

        return NumpyBertBackend(model_dir, ascii_fast_path=options.ascii_fast_path)
    if kind == "torch":
        from tandem_endpoint.backends.torch_backend import TorchBackend

        return TorchBackend(model_dir, options)
    if kind == "probe-zeros":
        from tandem_endpoint.backends.stand_ins import ProbeZerosBackend

        return ProbeZerosBackend(model_dir, ascii_fast_path=options.ascii_fast_path)
    if kind == "fake-fast":
        from tandem_endpoint.backends.stand_ins import FakeFastBackend

        return FakeFastBackend(model_dir)
    raise ValueError(f"unknown backend {kind!r}; expected one of {BACKENDS}")


def embed(backend: Backend, texts: Sequence[str]) -> np.ndarray:
    """Tokenize and run `texts` as one batch (tests, benchmarks, the GPU check)."""
    return backend.forward(backend.tokenize(texts))
