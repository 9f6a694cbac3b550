"""EventBridge Scheduler's `rate()` rules, locally: every function with a `Schedule` event is
invoked with its `Input` every N seconds (the watchdog's `rate(5 minutes)`, the async sweep's
`rate(1 minute)`). `pause(fn)` skips one function's runs until `resume(fn)` (a test that needs a
stopped sweep)."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from tandem.local.lambda_service import LambdaService
from tandem.local.template import FunctionSpec

log = logging.getLogger(__name__)


class Schedules:
    def __init__(self, functions: dict[str, FunctionSpec], lambdas: LambdaService) -> None:
        self.functions = functions
        self.lambdas = lambdas
        self._running: list[tuple[threading.Thread, threading.Event]] = []
        self._paused: set[str] = set()

    def _name(self, function: str) -> str:
        name = self.lambdas.resolve_name(function)
        if name is None or name not in self.inputs():
            raise KeyError(f"{function} has no Schedule event")
        return name

    def pause(self, function: str) -> None:
        self._paused.add(self._name(function))

    def resume(self, function: str) -> None:
        self._paused.discard(self._name(function))

    def inputs(self) -> dict[str, dict[str, Any]]:
        """The schedule input of every scheduled function, by function name."""
        out = {}
        for spec in self.functions.values():
            for ev in spec.events:
                if ev.type == "Schedule":
                    raw = ev.properties.get("Input")
                    out[spec.name] = json.loads(raw) if raw else {}
        return out

    def run_now(self, function: str, overrides: dict[str, Any] | None = None) -> Any:
        """Invoke a scheduled function once now with its input (updated with `overrides`);
        returns its result, raising if it failed."""
        name = self._name(function)
        result = self.lambdas.invoke(name, {**self.inputs()[name], **(overrides or {})})
        if result.error_type:
            raise RuntimeError(f"{function} failed: {result.payload}")
        return result.payload

    def start(self, interval_s: float, overrides: dict[str, Any] | None = None) -> None:
        """Invoke every scheduled function every `interval_s`, like a rate() rule."""
        for name, payload in self.inputs().items():
            stop = threading.Event()
            t = threading.Thread(
                target=self._loop,
                args=(name, {**payload, **(overrides or {})}, interval_s, stop),
                name=f"schedule-{name}",
                daemon=True,
            )
            t.start()
            self._running.append((t, stop))

    def stop(self) -> None:
        for _, stop in self._running:
            stop.set()
        for t, _ in self._running:
            t.join(timeout=30)
        self._running = []

    def _loop(
        self, name: str, payload: dict[str, Any], interval_s: float, stop: threading.Event
    ) -> None:
        while not stop.wait(interval_s):
            if name in self._paused:
                continue
            try:
                self.lambdas.invoke(name, payload)
            except Exception:
                log.exception("scheduled invoke of %s failed", name)
