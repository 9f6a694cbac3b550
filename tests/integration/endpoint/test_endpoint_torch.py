"""The torch backend (the GPU path) on the CPU, real model, against the committed
sentence-transformers fp32 reference: every option combination that runs on a CPU, alone and
through the batcher (length buckets, token cap, tokenizer pool)."""

from __future__ import annotations

import asyncio
import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")

from tandem_endpoint.__main__ import default_model_dir  # noqa: E402
from tandem_endpoint.backends import BackendOptions, TorchOptions, embed, load_backend  # noqa: E402
from tandem_endpoint.batcher import Batcher, BatchingSettings  # noqa: E402

REFERENCE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "reference")
WIDTHS = (16, 32, 64, 128, 256)


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    with open(os.path.join(REFERENCE, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)
    return texts, np.load(os.path.join(REFERENCE, "embeddings.npy"))


def cosines(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return (got * expected).sum(axis=1) / np.linalg.norm(got, axis=1)


COMBINATIONS = [
    TorchOptions(device="cpu"),  # the defaults: fp32 on the CPU, sdpa
    TorchOptions(device="cpu", attention="eager"),
    TorchOptions(device="cpu", dtype="bf16"),
    TorchOptions(device="cpu", dtype="fp16"),
    TorchOptions(device="cpu", dtype="bf16", attention="eager"),
    TorchOptions(device="cpu", static_shapes=True),
    TorchOptions(device="cpu", dtype="bf16", static_shapes=True),
    TorchOptions(device="cpu", pin_memory=False, attention="eager", static_shapes=True),
]


def name(o: TorchOptions) -> str:
    return f"{o.dtype}-{o.attention}-{'static' if o.static_shapes else 'dynamic'}"


@pytest.mark.parametrize("options", COMBINATIONS, ids=[name(o) for o in COMBINATIONS])
def test_torch_options_match_the_fp32_reference(reference, options: TorchOptions) -> None:
    texts, expected = reference
    backend = load_backend("torch", default_model_dir(), BackendOptions(options, widths=WIDTHS))
    assert backend.max_seq_length == 256
    # Mixed lengths in one batch: padding (and, with static shapes, padded rows) must not leak.
    got = np.vstack([embed(backend, texts[i : i + 48]) for i in range(0, len(texts), 48)])
    assert got.dtype == np.float32 and got.shape == expected.shape
    cos = cosines(got, expected)
    worst = int(np.argmin(cos))
    assert cos.min() >= 0.999, f"{name(options)}: text {worst} cosine {cos[worst]:.6f}"
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)
    single = embed(backend, [texts[worst]])
    assert cosines(single, got[worst : worst + 1])[0] >= 0.999  # batch-independent


def test_torch_compile_matches_the_reference_on_the_cpu(reference) -> None:
    """torch.compile (inductor) on one static shape: 8 texts padded to 64 x 8."""
    texts, expected = reference
    short = [i for i, t in enumerate(texts) if len(t) < 120][:8]
    options = TorchOptions(device="cpu", compile="default", static_shapes=True)
    backend = load_backend("torch", default_model_dir(), BackendOptions(options, widths=(64,)))
    got = embed(backend, [texts[i] for i in short])
    assert backend.padded_shape(len(short), 20) == (8, 64)
    assert cosines(got, expected[short]).min() >= 0.999


def test_reference_through_the_batcher_with_buckets_and_a_token_cap(reference) -> None:
    texts, expected = reference
    backend = load_backend("torch", default_model_dir(), BackendOptions(TorchOptions(device="cpu")))
    settings = BatchingSettings(
        max_batch_size=0, max_batch_tokens=2048, max_wait_ms=5, tokenize_threads=2
    )

    async def run() -> tuple[np.ndarray, dict]:
        batcher = Batcher(backend, settings)
        batcher.start()
        try:
            halves = await asyncio.gather(batcher.embed(texts[::2]), batcher.embed(texts[1::2]))
            return np.vstack(halves), batcher.stats.snapshot()
        finally:
            await batcher.stop()

    got, stats = asyncio.run(run())
    order = list(range(0, len(texts), 2)) + list(range(1, len(texts), 2))
    assert cosines(got, expected[order]).min() >= 0.999
    assert stats["batches"] > 1 and stats["padding_efficiency"] > 0.5
