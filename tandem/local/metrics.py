"""`tandem local metrics`: the metrics a local cloud's functions emitted, summed up.

The functions write CloudWatch Embedded Metric Format lines (Powertools `single_metric`) on
stdout, as in Lambda; the local cloud's Lambda service appends them to the function's log in the
session's log folder (`<log_dir>/<function>.log`, named in `.tandem/local-cloud.json`). On AWS,
CloudWatch Logs turns the same lines into metrics; here they are read back from those files.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Point:
    """One metric value from one EMF line."""

    namespace: str
    name: str
    unit: str
    dimensions: tuple[tuple[str, str], ...]
    value: float
    function: str  # the log it came from


def read_points(log_dir: Path) -> Iterator[Point]:
    """Every metric value in the EMF lines of the function logs under `log_dir`."""
    for path in sorted(log_dir.glob("*.log")):
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if '"_aws"' in line:
                    yield from _points(line, path.stem)


def _points(line: str, function: str) -> Iterator[Point]:
    try:
        doc = json.loads(line[line.index("{") :])
        directives = doc["_aws"]["CloudWatchMetrics"]
    except (ValueError, KeyError, TypeError):
        return  # a log line that only mentions "_aws"
    for directive in directives:
        dims = tuple(sorted((d, str(doc.get(d, ""))) for ds in directive["Dimensions"] for d in ds))
        for metric in directive["Metrics"]:
            raw = doc.get(metric["Name"], 0)
            for value in raw if isinstance(raw, list) else [raw]:
                yield Point(
                    directive["Namespace"],
                    metric["Name"],
                    metric.get("Unit", ""),
                    dims,
                    float(value),
                    function,
                )


@dataclass
class Series:
    namespace: str
    name: str
    unit: str
    dimensions: tuple[tuple[str, str], ...]
    values: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        return math.fsum(self.values)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.values)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def series(points: Iterable[Point]) -> list[Series]:
    """Points grouped as CloudWatch would: by namespace, name and dimensions."""
    out: dict[tuple[Any, ...], Series] = {}
    for p in points:
        key = (p.namespace, p.name, p.dimensions)
        if key not in out:
            out[key] = Series(p.namespace, p.name, p.unit, p.dimensions)
        out[key].values.append(p.value)
    return sorted(out.values(), key=lambda s: (s.namespace, s.name, s.dimensions))


def totals(points: Iterable[Point]) -> dict[str, float]:
    """Sum per metric name, all dimensions together."""
    out: dict[str, float] = defaultdict(float)
    for p in points:
        out[p.name] += p.value
    return dict(out)


def summary(log_dir: Path) -> str:
    """The table `tandem local metrics` prints."""
    points = list(read_points(log_dir))
    if not points:
        return f"no metrics yet in {log_dir} (EMF lines in the function logs)"
    functions = sorted({p.function for p in points})
    rows = [
        f"metrics from {len(points)} EMF values in {len(functions)} function logs under {log_dir}",
        "",
        "| metric | dimensions (besides service) | unit | samples | sum | p50 | p99 | max |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in series(points):
        dims = ", ".join(f"{k}={v}" for k, v in s.dimensions if k != "service") or "-"
        rows.append(
            f"| {s.name} | {dims} | {s.unit} | {len(s.values)} | {s.total:g} | "
            f"{s.percentile(0.5):g} | {s.percentile(0.99):g} | {max(s.values):g} |"
        )
    return "\n".join(rows)
