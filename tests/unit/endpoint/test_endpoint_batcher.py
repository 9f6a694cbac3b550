"""Dynamic batcher behaviour, driven directly on an event loop with a FakeBackend."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from endpoint_fakes import FakeBackend, fake_vector
from tandem_endpoint.batcher import Batcher, BatchingSettings, QueueFullError


async def _with_batcher(backend: FakeBackend, settings: BatchingSettings, body):
    batcher = Batcher(backend, settings)
    batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.stop()


def run(backend: FakeBackend, body, **settings: object):
    return asyncio.run(_with_batcher(backend, BatchingSettings(**settings), body))


def test_concurrent_requests_share_one_forward_pass() -> None:
    backend = FakeBackend()

    async def body(batcher: Batcher) -> list[np.ndarray]:
        return await asyncio.gather(*(batcher.embed([f"text {i}"]) for i in range(10)))

    results = run(backend, body, max_wait_ms=50)
    assert len(backend.batches) == 1 and len(backend.batches[0]) == 10
    for i, rows in enumerate(results):
        np.testing.assert_allclose(rows[0], fake_vector(f"text {i}"), rtol=1e-6)
    assert batcher_stats_mean(backend) == 10


def batcher_stats_mean(backend: FakeBackend) -> float:
    return sum(len(b) for b in backend.batches) / len(backend.batches)


def test_max_batch_size_caps_each_pass_and_splits_a_request_in_order() -> None:
    backend = FakeBackend()
    texts = [f"{'w ' * i}end" for i in range(10)]

    async def body(batcher: Batcher) -> np.ndarray:
        return await batcher.embed(texts)

    rows = run(backend, body, max_batch_size=4, max_wait_ms=20)
    assert sorted(len(b) for b in backend.batches) == [2, 4, 4]
    np.testing.assert_allclose(rows, [fake_vector(t) for t in texts], rtol=1e-6)


def test_token_budget_limits_padded_tokens_per_pass() -> None:
    backend = FakeBackend()  # 6 words -> 8 tokens; budget 20 -> at most 2 per pass

    async def body(batcher: Batcher) -> list[np.ndarray]:
        return await asyncio.gather(*(batcher.embed(["a b c d e f"]) for _ in range(5)))

    run(backend, body, max_batch_tokens=20, max_wait_ms=20)
    assert max(len(b) for b in backend.batches) == 2
    assert sum(len(b) for b in backend.batches) == 5


def test_max_wait_bounds_how_long_a_lone_request_waits() -> None:
    async def timed(batcher: Batcher) -> float:
        started = time.monotonic()
        await batcher.embed(["alone"])
        return time.monotonic() - started

    assert 0.15 <= run(FakeBackend(), timed, max_wait_ms=150) < 1.0
    assert run(FakeBackend(), timed, max_wait_ms=0) < 0.1


def test_batches_group_similar_token_lengths() -> None:
    backend = FakeBackend()
    short = ["a", "a b", "a b c"]
    long = [" ".join(["w"] * n) for n in (50, 51, 52)]
    interleaved = [t for pair in zip(short, long, strict=True) for t in pair]

    async def body(batcher: Batcher) -> list[np.ndarray]:
        return await asyncio.gather(*(batcher.embed([t]) for t in interleaved))

    run(backend, body, max_batch_size=3, max_wait_ms=50)
    assert [sorted(b) for b in backend.batches] == [sorted(short), sorted(long)]


def test_full_queue_is_refused_at_once() -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)

    async def body(batcher: Batcher) -> float:
        first = asyncio.ensure_future(batcher.embed(["in the forward pass"]))
        while not backend.forward_started.is_set():
            await asyncio.sleep(0.005)
        queued = asyncio.ensure_future(batcher.embed(["one", "two"]))  # fills max_queue=2
        await asyncio.sleep(0)
        started = time.monotonic()
        with pytest.raises(QueueFullError):
            await batcher.embed(["three"])
        refused_after = time.monotonic() - started
        gate.set()
        await asyncio.gather(first, queued)
        return refused_after

    assert run(backend, body, max_queue=2, max_wait_ms=0) < 0.05


def test_cancelled_requests_are_not_computed() -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)

    async def body(batcher: Batcher) -> None:
        first = asyncio.ensure_future(batcher.embed(["busy"]))
        while not backend.forward_started.is_set():
            await asyncio.sleep(0.005)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await batcher.embed(["gives up"])
        assert batcher.queue_depth == 1
        gate.set()
        await first
        await batcher.embed(["after"])

    run(backend, body, max_wait_ms=0)
    assert ["gives up"] not in backend.batches


def test_no_batching_runs_each_request_as_its_own_pass() -> None:
    backend = FakeBackend()

    async def body(batcher: Batcher) -> list[np.ndarray]:
        return await asyncio.gather(*(batcher.embed([f"r{i}a", f"r{i}b"]) for i in range(5)))

    run(backend, body, batching=False, max_wait_ms=50)
    assert sorted(backend.batches) == [[f"r{i}a", f"r{i}b"] for i in range(5)]


def test_forward_failure_fails_the_batch_and_the_batcher_keeps_going() -> None:
    class Exploding(FakeBackend):
        def forward(self, tokens):
            vectors = super().forward(tokens)
            if "boom" in self.batches[-1]:
                raise RuntimeError("kaboom")
            return vectors

    async def body(batcher: Batcher) -> np.ndarray:
        with pytest.raises(RuntimeError):
            await batcher.embed(["boom"])
        return await batcher.embed(["fine"])

    assert run(Exploding(), body, max_wait_ms=0).shape == (1, 4)


def test_token_budget_alone_caps_a_pass_when_max_batch_size_is_zero() -> None:
    backend = FakeBackend()  # 2 words -> 4 tokens; 10 words -> 12 tokens
    short = [f"s{i} x" for i in range(100)]
    long = [f"l{i} " + "w " * 9 for i in range(30)]

    async def body(batcher: Batcher) -> list[np.ndarray]:
        return await asyncio.gather(batcher.embed(short), batcher.embed(long))

    got_short, got_long = run(backend, body, max_batch_size=0, max_batch_tokens=120, max_wait_ms=20)
    np.testing.assert_allclose(got_short, [fake_vector(t) for t in short], rtol=1e-6)
    np.testing.assert_allclose(got_long, [fake_vector(t) for t in long], rtol=1e-6)
    for texts, width in zip(backend.batches, backend.widths, strict=True):
        assert len(texts) * width <= 120
    assert max(len(b) for b in backend.batches) == 30  # 30 x 4 tokens: more than 64 is allowed
    assert sorted(len(b) for b in backend.batches if b[0].startswith("l")) == [10, 10, 10]


def test_one_bucket_batches_in_arrival_order_and_pads_to_the_longest() -> None:
    backend = FakeBackend()
    texts = ["a", " ".join(["w"] * 40), "b c", "d"]

    async def body(batcher: Batcher) -> np.ndarray:
        return await batcher.embed(texts)

    rows = run(backend, body, length_buckets=(), max_batch_size=2, max_wait_ms=20)
    assert backend.batches == [texts[:2], texts[2:]]  # no grouping by length
    assert backend.widths == [42, 4]
    np.testing.assert_allclose(rows, [fake_vector(t) for t in texts], rtol=1e-6)


def test_buckets_pad_less_and_stats_count_padding() -> None:
    texts = [" ".join(["w"] * (1 if i % 2 else 60)) + f" {i}" for i in range(64)]

    async def body(batcher: Batcher) -> dict:
        await batcher.embed(texts)
        return batcher.stats.snapshot()

    bucketed = run(FakeBackend(), body, max_batch_size=32, max_wait_ms=20)
    single = run(FakeBackend(), body, max_batch_size=32, max_wait_ms=20, length_buckets=())
    assert bucketed["tokens"] == single["tokens"] == sum(len(t.split()) + 2 for t in texts)
    assert bucketed["padding_efficiency"] > 0.99 and single["padding_efficiency"] < 0.55


def test_a_request_split_across_passes_keeps_its_row_order() -> None:
    backend = FakeBackend()
    texts = [f"t{i} " + "w " * (i % 7) for i in range(200)]

    async def body(batcher: Batcher) -> list[np.ndarray]:
        return await asyncio.gather(batcher.embed(texts), batcher.embed(texts[::-1]))

    a, b = run(backend, body, max_batch_size=16, max_wait_ms=5, length_buckets=(3, 5, 8))
    np.testing.assert_allclose(a, [fake_vector(t) for t in texts], rtol=1e-6)
    np.testing.assert_allclose(b, a[::-1], rtol=1e-6)
    assert sum(len(x) for x in backend.batches) == 400 and max(map(len, backend.batches)) <= 16


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_tokenizing_inline_or_on_a_pool_gives_the_same_rows(threads: int) -> None:
    backend = FakeBackend()
    texts = [f"text {i} " + "w " * (i % 11) for i in range(700)]  # > one tokenizer chunk

    async def body(batcher: Batcher) -> tuple[np.ndarray, dict]:
        rows = await batcher.embed(texts)
        return rows, batcher.stages.snapshot()

    rows, stages = run(backend, body, tokenize_threads=threads, max_batch_size=128)
    np.testing.assert_allclose(rows, [fake_vector(t) for t in texts], rtol=1e-6)
    assert stages["tokenize"]["sentences"] == 700 and stages["forward"]["sentences"] == 700
    assert stages["tokenize"]["calls"] == (1 if threads == 0 else 3)
