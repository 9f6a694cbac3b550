"""CPU time per stage of the request path, for `/metrics` and the feed-rate benchmark.

Each stage runs on one thread at a time per call (a worker, the tokenizer pool, the forward
thread), so `time.thread_time()` around it is the CPU that stage costs, the Rust tokenizer's
included (it runs on the calling thread). Sentences per CPU-second of a stage is what one core
sustains for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class StageTimes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, list[float]] = {}  # name -> [calls, sentences, cpu_s, wall_s]

    def add(self, name: str, sentences: int, cpu_s: float, wall_s: float) -> None:
        with self._lock:
            totals = self._totals.setdefault(name, [0, 0, 0.0, 0.0])
            totals[0] += 1
            totals[1] += sentences
            totals[2] += cpu_s
            totals[3] += wall_s

    def run(self, name: str, sentences: int, fn: Callable[..., T], *args: Any) -> T:
        """Call `fn(*args)` on this thread and charge its CPU and wall time to `name`."""
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.add(name, sentences, time.thread_time() - cpu, time.perf_counter() - wall)

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {
                name: {
                    "calls": int(calls),
                    "sentences": int(sentences),
                    "cpu_s": round(cpu_s, 6),
                    "wall_s": round(wall_s, 6),
                }
                for name, (calls, sentences, cpu_s, wall_s) in sorted(self._totals.items())
            }
