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
    return asyncio.run(_with_batcher(backend, BatchingSettings(**settings), body))  # type: ignore[arg-type]


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
