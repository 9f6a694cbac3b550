"""Dynamic batching: tokenize once on a thread pool, gather sequences of similar length into one
forward pass, run it on a forward thread.

`Batcher.embed(texts)`:

1. tokenizes the request on the tokenizer pool (`tokenize_threads` threads; chunks of
   `TOKENIZE_CHUNK` texts run in parallel; the Rust tokenizer releases the GIL), off the event
   loop and overlapped with whatever forward pass is running;
2. files its sequences into length buckets (`length_buckets`: upper edges in tokens), one
   `Segment` (a job plus an index array of its rows) per bucket: the queue's work is per request
   and per bucket, never per sequence, so the event loop's cost per sentence is small;
3. the batching loop picks a bucket: one whose pending rows fill a batch, else, `max_wait_ms`
   after the oldest pending segment arrived, the oldest one's bucket. It takes rows from that
   bucket, oldest first, up to `max_batch_size` rows (0 = no cap by count) and `max_batch_tokens`
   padded tokens (rows x the longest among them): the cap is by tokens, so short texts make
   wide batches and long ones narrow batches;
4. the forward thread assembles the batch (`Tokens`, padded to its own longest row), runs
   `backend.forward`, and writes each row into its request's output array.

`length_buckets=()` is one bucket: batches in arrival order, padded to their longest text (the
"no buckets" variant the feed benchmark compares). `batching=False` runs each request as its
own forward pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import statistics
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from tandem_endpoint.backends import Backend
from tandem_endpoint.backends.tokens import Tokens
from tandem_endpoint.stages import StageTimes

log = logging.getLogger("tandem_endpoint.batcher")

TOKENIZE_CHUNK = 256  # texts per tokenizer task: enough to amortise a call, small enough to spread
DEFAULT_BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256)


class QueueFullError(Exception):
    """The bounded queue cannot take this request: answer 429 at once."""


def default_tokenize_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


@dataclass
class BatchingSettings:
    max_batch_size: int = 64  # sequences per forward pass; 0 = no cap (max_batch_tokens decides)
    max_batch_tokens: int = 16384  # padded tokens per forward pass (rows x longest row)
    max_wait_ms: float = 10.0
    max_queue: int = 512  # sequences waiting (tokenizing or queued)
    batching: bool = True
    length_buckets: tuple[int, ...] = DEFAULT_BUCKETS
    tokenize_threads: int = field(default_factory=default_tokenize_threads)  # 0: on the loop

    def rows_cap(self, width: int) -> int:
        """Most rows a batch of this padded width may hold."""
        rows = max(1, self.max_batch_tokens // max(1, width))
        return min(rows, self.max_batch_size) if self.max_batch_size > 0 else rows


@dataclass(eq=False)
class Job:
    """One request: its tokens, its output rows, and the future the request awaits."""

    tokens: Tokens
    future: asyncio.Future[np.ndarray]
    remaining: int
    out: np.ndarray | None = None
    enqueued_at: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class Segment:
    job: Job
    rows: np.ndarray  # indices into job.tokens, ascending
    width: int  # the longest of these rows
    enqueued_at: float


@dataclass
class BatchStats:
    batches: int = 0
    sequences: int = 0
    tokens: int = 0  # real tokens forwarded
    padded_tokens: int = 0  # rows x width, summed over batches
    queue_wait_ms_total: float = 0.0
    forward_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2048))

    def snapshot(self) -> dict[str, float | int]:
        return {
            "batches": self.batches,
            "sequences": self.sequences,
            "tokens": self.tokens,
            "padded_tokens": self.padded_tokens,
            "padding_efficiency": round(self.tokens / self.padded_tokens, 4)
            if self.padded_tokens
            else 0.0,
            "mean_batch_size": round(self.sequences / self.batches, 3) if self.batches else 0.0,
            "queue_wait_ms_mean": round(self.queue_wait_ms_total / self.sequences, 3)
            if self.sequences
            else 0.0,
            "forward_ms_p50": round(statistics.median(self.forward_ms), 3)
            if self.forward_ms
            else 0.0,
        }


class Bucket:
    def __init__(self, edge: int) -> None:
        self.edge = edge  # upper edge in tokens (the last bucket: no limit)
        self.segments: deque[Segment] = deque()
        self.rows = 0

    def drop_cancelled(self) -> int:
        dropped = sum(len(s.rows) for s in self.segments if s.job.future.done())
        if dropped:
            self.segments = deque(s for s in self.segments if not s.job.future.done())
            self.rows -= dropped
        return dropped

    def is_full(self, settings: BatchingSettings) -> bool:
        if not self.rows:
            return False
        width = max(s.width for s in self.segments)
        return self.rows >= settings.rows_cap(width)


class Batcher:
    def __init__(
        self, backend: Backend, settings: BatchingSettings, stages: StageTimes | None = None
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.stats = BatchStats()
        self.stages = stages or StageTimes()
        edges = sorted(set(settings.length_buckets)) if settings.batching else []
        self._edges = np.asarray(edges, dtype=np.int32)
        self._buckets = [Bucket(e) for e in edges] + [Bucket(2**31 - 1)]
        self._pending_sequences = 0  # queued + being tokenized
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")
        threads = settings.tokenize_threads
        self._tokenizers = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tokenize")
            if threads > 0
            else None
        )
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
        if self._tokenizers:
            self._tokenizers.shutdown(wait=False, cancel_futures=True)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Queue `texts` and wait for their embeddings (float32 `[n, dims]`, input order)."""
        texts = list(texts)
        waiting = self._pending_sequences
        if waiting and waiting + len(texts) > self.settings.max_queue:
            raise QueueFullError(f"queue full ({self._pending_sequences} sequences waiting)")
        if not texts:
            return np.zeros((0, self.backend.dims), dtype=np.float32)
        self._pending_sequences += len(texts)
        try:
            tokens = await self._tokenize(texts)
        except BaseException:
            self._pending_sequences -= len(texts)
            raise
        job = Job(tokens, asyncio.get_running_loop().create_future(), remaining=len(texts))
        self._enqueue(job)
        try:
            return await job.future
        except asyncio.CancelledError:
            job.future.cancel()  # the caller gave up (deadline): do not compute these
            raise

    async def _tokenize(self, texts: list[str]) -> Tokens:
        if self._tokenizers is None:  # on the event loop: blocks it while the tokenizer runs
            return self.stages.run("tokenize", len(texts), self.backend.tokenize, texts)
        loop = asyncio.get_running_loop()
        chunks = [texts[i : i + TOKENIZE_CHUNK] for i in range(0, len(texts), TOKENIZE_CHUNK)]
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(
                    self._tokenizers, self.stages.run, "tokenize", len(c), self.backend.tokenize, c
                )
                for c in chunks
            )
        )
        return parts[0] if len(parts) == 1 else _concat(parts)

    def _enqueue(self, job: Job) -> None:
        lengths = job.tokens.lengths
        if not self.settings.batching:
            segment = Segment(job, np.arange(len(lengths)), int(lengths.max()), job.enqueued_at)
            self._buckets[-1].segments.append(segment)
            self._buckets[-1].rows += len(lengths)
        else:
            which = np.searchsorted(self._edges, lengths, side="left")
            order = np.argsort(which, kind="stable")
            present, starts = np.unique(which[order], return_index=True)
            for b, rows in zip(present, np.split(order, starts[1:]), strict=True):
                bucket = self._buckets[int(b)]
                width = int(lengths[rows].max())
                bucket.segments.append(Segment(job, rows, width, job.enqueued_at))
                bucket.rows += len(rows)
        self._arrived.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            started = time.monotonic()
            try:
                rows, width = await loop.run_in_executor(self._executor, self._forward, batch)
            except Exception as exc:
                log.exception("forward pass failed", extra={"batch_size": _rows(batch)})
                for seg in batch:
                    if not seg.job.future.done():
                        seg.job.future.set_exception(exc)
                continue
            self._record(batch, rows, width, started)
            for seg in batch:
                job = seg.job
                job.remaining -= len(seg.rows)
                if job.remaining == 0 and not job.future.done():
                    job.future.set_result(job.out)  # type: ignore[arg-type]

    async def _next_batch(self) -> list[Segment]:
        """Wait until a bucket is full or the oldest segment has waited `max_wait_ms`."""
        while True:
            for bucket in self._buckets:
                self._pending_sequences -= bucket.drop_cancelled()
            live = [b for b in self._buckets if b.rows]
            if not live:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if not self.settings.batching:
                return self._take(self._buckets[-1], whole_segment=True)
            full = [b for b in live if b.is_full(self.settings)]
            oldest = min(full or live, key=lambda b: b.segments[0].enqueued_at)
            remaining = oldest.segments[0].enqueued_at + self.settings.max_wait_ms / 1000
            remaining -= time.monotonic()
            if full or remaining <= 0:
                return self._take(oldest)
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=remaining)

    def _take(self, bucket: Bucket, whole_segment: bool = False) -> list[Segment]:
        """Pop rows from the front of `bucket` within the row and padded-token caps."""
        if whole_segment:
            taken = [bucket.segments.popleft()]
        else:
            taken, width, rows = [], 0, 0
            while bucket.segments:
                seg = bucket.segments[0]
                room = self.settings.rows_cap(max(width, seg.width)) - rows
                if room <= 0:
                    break
                if room < len(seg.rows):  # split: the rest keeps its place at the front
                    head, seg.rows = seg.rows[:room], seg.rows[room:]
                    lengths = seg.job.tokens.lengths
                    seg.width = int(lengths[seg.rows].max())
                    taken.append(Segment(seg.job, head, int(lengths[head].max()), seg.enqueued_at))
                    break
                taken.append(bucket.segments.popleft())
                rows += len(seg.rows)
                width = max(width, seg.width)
        rows = _rows(taken)
        bucket.rows -= rows
        self._pending_sequences -= rows
        return taken

    def _forward(self, batch: list[Segment]) -> tuple[int, int]:
        """Forward thread: assemble, run the model, scatter rows into each job's output."""
        cpu, wall = time.thread_time(), time.perf_counter()
        rows = _rows(batch)
        width = max(seg.width for seg in batch)
        ids = np.zeros((rows, width), dtype=np.int32)
        lengths = np.empty(rows, dtype=np.int32)
        offset = 0
        for seg in batch:
            k, tokens = len(seg.rows), seg.job.tokens
            ids[offset : offset + k, : seg.width] = tokens.ids[seg.rows, : seg.width]
            lengths[offset : offset + k] = tokens.lengths[seg.rows]
            offset += k
        self.stages.add("assemble", rows, time.thread_time() - cpu, time.perf_counter() - wall)
        vectors = self.stages.run("forward", rows, self.backend.forward, Tokens(ids, lengths))
        cpu, wall = time.thread_time(), time.perf_counter()
        offset = 0
        for seg in batch:
            k, job = len(seg.rows), seg.job
            if job.out is None:
                job.out = np.empty((len(job.tokens), vectors.shape[1]), dtype=np.float32)
            job.out[seg.rows] = vectors[offset : offset + k]
            offset += k
        self.stages.add("scatter", rows, time.thread_time() - cpu, time.perf_counter() - wall)
        return rows, width

    def _record(self, batch: list[Segment], rows: int, width: int, started: float) -> None:
        forward_ms = (time.monotonic() - started) * 1000
        real_tokens = sum(int(s.job.tokens.lengths[s.rows].sum()) for s in batch)
        waits_ms = [(started - seg.enqueued_at) * 1000 for seg in batch]
        self.stats.batches += 1
        self.stats.sequences += rows
        self.stats.tokens += real_tokens
        self.stats.padded_tokens += rows * width
        self.stats.queue_wait_ms_total += sum(
            w * len(seg.rows) for w, seg in zip(waits_ms, batch, strict=True)
        )
        self.stats.forward_ms.append(forward_ms)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "batch",
                extra={
                    "batch_size": rows,
                    "segments": len(batch),
                    "width": width,
                    "queue_wait_ms": round(max(waits_ms), 2),
                    "forward_ms": round(forward_ms, 2),
                    "queue_depth": self._pending_sequences,
                },
            )


def _rows(batch: list[Segment]) -> int:
    return sum(len(seg.rows) for seg in batch)


def _concat(parts: list[Tokens]) -> Tokens:
    width = max(p.width for p in parts)
    ids = np.zeros((sum(len(p) for p in parts), width), dtype=np.int32)
    offset = 0
    for p in parts:
        ids[offset : offset + len(p), : p.width] = p.ids
        offset += len(p)
    return Tokens(ids, np.concatenate([p.lengths for p in parts]))
