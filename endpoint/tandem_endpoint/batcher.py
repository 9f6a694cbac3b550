"""Dynamic batching: gather queued sequences into one forward pass on a single worker thread.

Each queued `Job` is one sequence (dynamic batching) or one whole request (`--no-batching`).
The batching loop waits for the first job, then gathers more until the batch is full by
sequence count or padded-token budget, or `max_wait_ms` after the oldest job arrived. While a
forward pass runs, new jobs pile up, so batches grow with load. The batch is chosen around the
oldest job from jobs of similar token length (less padding, no starvation), run with
`loop.run_in_executor` on one worker thread, and each job's future gets its rows.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from tandem_endpoint.backends import Backend

log = logging.getLogger("tandem_endpoint.batcher")


class QueueFullError(Exception):
    """The bounded queue cannot take this request: answer 429 at once."""


@dataclass
class BatchingSettings:
    max_batch_size: int = 64
    max_batch_tokens: int = 16384
    max_wait_ms: float = 10.0
    max_queue: int = 512
    batching: bool = True


@dataclass
class Job:
    texts: list[str]
    tokens: int  # longest sequence in this job (tokens), for the padded-token budget
    future: asyncio.Future[np.ndarray]
    enqueued_at: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    batches: int = 0
    sequences: int = 0
    queue_wait_ms_total: float = 0.0
    forward_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2048))

    def snapshot(self) -> dict[str, float | int]:
        return {
            "batches": self.batches,
            "sequences": self.sequences,
            "mean_batch_size": round(self.sequences / self.batches, 3) if self.batches else 0.0,
            "queue_wait_ms_mean": round(self.queue_wait_ms_total / self.sequences, 3)
            if self.sequences
            else 0.0,
            "forward_ms_p50": round(statistics.median(self.forward_ms), 3)
            if self.forward_ms
            else 0.0,
        }


class Batcher:
    def __init__(self, backend: Backend, settings: BatchingSettings) -> None:
        self.backend = backend
        self.settings = settings
        self.stats = BatchStats()
        self._pending: deque[Job] = deque()
        self._pending_sequences = 0
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")
        self._task: asyncio.Task[None] | None = None

    @property
    def queue_depth(self) -> int:
        return self._pending_sequences

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Queue `texts` and wait for their embeddings (float32 `[n, dims]`, input order)."""
        texts = list(texts)
        waiting = self._pending_sequences
        if waiting and waiting + len(texts) > self.settings.max_queue:
            raise QueueFullError(f"queue full ({self._pending_sequences} sequences waiting)")
        if not texts:
            return np.zeros((0, self.backend.dims), dtype=np.float32)
        loop = asyncio.get_running_loop()
        counts = self.backend.count_tokens(texts)
        if self.settings.batching:
            jobs = [Job([t], n, loop.create_future()) for t, n in zip(texts, counts, strict=True)]
        else:
            jobs = [Job(texts, max(counts), loop.create_future())]
        self._pending.extend(jobs)
        self._pending_sequences += len(texts)
        self._arrived.set()
        try:
            rows = await asyncio.gather(*(job.future for job in jobs))
        except asyncio.CancelledError:
            for job in jobs:  # the caller gave up (deadline): do not compute these
                job.future.cancel()
            raise
        return np.concatenate(rows, axis=0)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_for_batch()
            batch = self._take_batch()
            if not batch:
                continue
            texts = [t for job in batch for t in job.texts]
            started = time.monotonic()
            try:
                vectors = await loop.run_in_executor(self._executor, self.backend.encode, texts)
            except Exception as exc:
                log.exception("forward pass failed", extra={"batch_size": len(texts)})
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self._record(batch, len(texts), started)
            offset = 0
            for job in batch:
                if not job.future.done():
                    job.future.set_result(vectors[offset : offset + len(job.texts)])
                offset += len(job.texts)

    async def _wait_for_batch(self) -> None:
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        if not self.settings.batching:
            return
        deadline = self._pending[0].enqueued_at + self.settings.max_wait_ms / 1000
        while not self._batch_is_full():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=remaining)
            except TimeoutError:
                return

    def _batch_is_full(self) -> bool:
        s = self.settings
        if self._pending_sequences >= s.max_batch_size:
            return True
        longest = max(job.tokens for job in self._pending)
        return longest * self._pending_sequences >= s.max_batch_tokens

    def _take_batch(self) -> list[Job]:
        """Pop the oldest live job plus its nearest neighbours by token length, within limits."""
        self._drop_cancelled()
        if not self._pending:
            return []
        oldest = self._pending[0]
        chosen = self._similar_length_batch(oldest) if self.settings.batching else [oldest]
        chosen_ids = {id(job) for job in chosen}
        self._pending = deque(job for job in self._pending if id(job) not in chosen_ids)
        self._pending_sequences -= sum(len(job.texts) for job in chosen)
        chosen.sort(key=lambda job: job.tokens)
        return chosen

    def _similar_length_batch(self, oldest: Job) -> list[Job]:
        s = self.settings
        by_length = sorted(self._pending, key=lambda job: job.tokens)
        centre = next(i for i, job in enumerate(by_length) if job is oldest)
        lo, hi = centre, centre + 1  # chosen = by_length[lo:hi]
        longest, shortest = oldest.tokens, oldest.tokens
        while hi - lo < s.max_batch_size:
            below = by_length[lo - 1] if lo > 0 else None
            above = by_length[hi] if hi < len(by_length) else None
            if below is None and above is None:
                break
            take_above = below is None or (
                above is not None and above.tokens - longest <= shortest - below.tokens
            )
            candidate = above if take_above else below
            assert candidate is not None
            if max(longest, candidate.tokens) * (hi - lo + 1) > s.max_batch_tokens:
                break
            if take_above:
                hi += 1
                longest = candidate.tokens
            else:
                lo -= 1
                shortest = candidate.tokens
        return by_length[lo:hi]

    def _drop_cancelled(self) -> None:
        live = deque(job for job in self._pending if not job.future.done())
        self._pending_sequences -= sum(len(j.texts) for j in self._pending if j.future.done())
        self._pending = live

    def _record(self, batch: list[Job], sequences: int, started: float) -> None:
        forward_ms = (time.monotonic() - started) * 1000
        waits_ms = [(started - job.enqueued_at) * 1000 for job in batch]
        self.stats.batches += 1
        self.stats.sequences += sequences
        self.stats.queue_wait_ms_total += sum(
            w * len(job.texts) for w, job in zip(waits_ms, batch, strict=True)
        )
        self.stats.forward_ms.append(forward_ms)
        log.info(
            "batch",
            extra={
                "batch_size": sequences,
                "jobs": len(batch),
                "max_tokens": max(job.tokens for job in batch),
                "queue_wait_ms": round(max(waits_ms), 2),
                "forward_ms": round(forward_ms, 2),
                "queue_depth": self._pending_sequences,
            },
        )
