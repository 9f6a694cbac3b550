"""Fault injection for the local cloud's tests (enabled only by --enable-fault-injection).

A plan counts down per invocation: `{"throttle": n}` -> 429, `{"error_5xx": n}` -> 500,
`{"error_4xx": n}` -> 400, `{"slow_s": s, "count": n}` -> sleep s then serve,
`{"malformed": n}` -> 200 off-contract.
A slow request may carry its own deadline, `{"slow_s": s, "count": n, "deadline_s": d}`: it is
answered 503 `deadline_exceeded` after d seconds, so a test sees the deadline's answer without
shortening the deadline every other (honest, if slow) request gets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PLAN_KEYS = ("throttle", "error_5xx", "error_4xx", "slow_s", "count", "deadline_s", "malformed")


@dataclass
class FaultPlan:
    throttle: int = 0
    error_5xx: int = 0
    error_4xx: int = 0
    slow_s: float = 0.0
    slow_count: int = 0
    slow_deadline_s: float | None = None  # a slow request's own deadline (else the server's)
    malformed: int = 0

    def update(self, plan: dict[str, Any]) -> None:
        unknown = set(plan) - set(PLAN_KEYS)
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        for key in ("throttle", "error_5xx", "error_4xx", "malformed"):
            if key in plan:
                setattr(self, key, _non_negative_int(plan[key], key))
        if "slow_s" in plan:
            slow_s = plan["slow_s"]
            if isinstance(slow_s, bool) or not isinstance(slow_s, int | float) or slow_s < 0:
                raise ValueError("slow_s must be a non-negative number")
            self.slow_s = float(slow_s)
            self.slow_count = _non_negative_int(plan.get("count", 1), "count")
            deadline = plan.get("deadline_s")
            if deadline is not None and (
                isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0
            ):
                raise ValueError("deadline_s must be a positive number")
            self.slow_deadline_s = None if deadline is None else float(deadline)

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def take(self) -> str | None:
        """The fault for this invocation, if any: throttle, error_5xx, error_4xx, slow,
        malformed."""
        for name in ("throttle", "error_5xx", "error_4xx"):
            if getattr(self, name) > 0:
                setattr(self, name, getattr(self, name) - 1)
                return name
        if self.slow_count > 0:
            self.slow_count -= 1
            return "slow"
        if self.malformed > 0:
            self.malformed -= 1
            return "malformed"
        return None


def _non_negative_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value
