"""The cost model behind `tandem cost`: $ per 1M chunks, Tandem vs a naive design.

Prices come from `tandem/prices.json` (one value per line item, with its source and the date it
was checked). Durations come from docs/BENCHMARKS.md where measured (the chunker's MB/s; the
endpoint's dynamic-batching speed-up over per-request calls) and from flags otherwise.

Both designs process the same workload at the same throughput (chunks/s); only how the work is
packaged differs:

- Tandem: arm64 Lambdas; one Standard execution per job (`docs_per_job` documents): 4 state
  transitions + 2 per batch of `batch_size` chunks; 3 Lambda invocations per job (api or ingest,
  preprocess, deliver); one endpoint call per batch, made by Step Functions itself (no Lambda
  waits on the GPU). `--workflow express` bills the job as an Express execution instead.
- Naive: x86 Lambdas; one Standard execution per document: 3 transitions (preprocess, map,
  deliver) + 1 per chunk (a Lambda task per chunk that calls the endpoint and waits for it);
  4 invocations per document + 1 per chunk; the endpoint answers one chunk per call, so it
  needs `batching_speedup` times the instance-hours for the same chunks.

The CPU side is everything but the GPU instance: Lambda (GB-s + requests), Step Functions,
API Gateway and SQS. S3, DynamoDB, EventBridge and CloudWatch are left out (a few requests per
job for Tandem, per document for the naive design, so leaving them out flatters the naive one).

Endpoint modes (`endpoint_modes`): the GPU bill of one bursty day (`BurstyDay`: traffic in
`busy_hours`, none the rest) for EndpointMode=realtime (at least `min_instances` around the
clock) and EndpointMode=async with scale to zero (instances only while there is work, plus each
burst's cold start and scale-in tail), and what async adds per batch (the submit and complete
Lambdas, one SNS notification, three inference-table writes) and per day (the sweep, every
minute). The price of scale to zero is latency: the first batch of a burst waits for the
scale-out alarm and a new instance (`prices.json` "figures", each with its source).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRICES = Path(__file__).with_name("prices.json")
BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
INSTANCE_PRICE_KEYS = {"ml.g6.xlarge": "sagemaker_ml_g6_xlarge_hour"}
ASYNC_INSTANCE_PRICE_KEYS = {"ml.g6.xlarge": "sagemaker_ml_g6_xlarge_async_hour"}
# template.yaml's AsyncHasBacklogWithoutCapacityAlarm: 2 one-minute periods before it scales 0 -> 1
SCALE_OUT_ALARM_S = 2 * 60


def load_prices(path: Path = PRICES) -> dict[str, float]:
    data = json.loads(path.read_text())
    return {k: float(v["value"]) for k, v in data["prices"].items()}


def load_figures(path: Path = PRICES) -> dict[str, float]:
    """The durations of prices.json's "figures" (the async cold start and scale-in tail)."""
    data = json.loads(path.read_text())
    return {k: float(v["value"]) for k, v in data["figures"].items() if isinstance(v, dict)}


@dataclass(frozen=True)
class Workload:
    documents_per_month: float = 1_000_000
    document_kb: float = 8.0  # UTF-8 KiB per document
    chars_per_chunk: float = 900.0  # ~256 tokens of English, less the overlap
    docs_per_job: int = 100  # documents per Tandem job (one JSONL upload / SQS message / POST)
    batch_size: int = 64
    instance_type: str = "ml.g6.xlarge"
    workflow: str = "standard"  # Tandem's workflow: standard or express

    @property
    def chunks_per_document(self) -> float:
        return max(1.0, math.ceil(self.document_kb * 1024 / self.chars_per_chunk))

    @property
    def chunks_per_month(self) -> float:
        return self.documents_per_month * self.chunks_per_document


@dataclass(frozen=True)
class Measured:
    preprocess_mb_s: float = 10.0  # chunker throughput (chunk-bench)
    endpoint_chunks_per_s: float = (
        1500.0  # one GPU instance, batched (an assumption until measured)
    )
    batching_speedup: float = 1.4  # batched vs one-chunk-per-call throughput (endpoint-bench)
    lambda_overhead_ms: float = 60.0  # per invocation: S3/DynamoDB calls, logging
    deliver_ms_per_chunk: float = 0.05  # assembling JSONL/.npy per chunk
    naive_call_ms: float = 25.0  # a Lambda's wait on one endpoint call (per chunk)
    express_job_s: float = 30.0  # an Express job's duration (mostly waiting on the endpoint)
    memory_gb: dict[str, float] = field(
        default_factory=lambda: {"api": 0.5, "preprocess": 1.769, "deliver": 1.769, "embed": 0.5}
    )


@dataclass(frozen=True)
class Breakdown:
    """Dollars per 1M chunks by line item."""

    items: dict[str, float]

    @property
    def cpu(self) -> float:
        return sum(v for k, v in self.items.items() if k != "GPU instance")

    @property
    def total(self) -> float:
        return sum(self.items.values())


def _lambda_s(_: Measured, ms: float) -> float:
    return ms / 1000.0


def tandem_cost(w: Workload, m: Measured, p: dict[str, float]) -> Breakdown:
    """$ per 1M chunks for the Tandem design."""
    chunks = 1_000_000.0
    docs = chunks / w.chunks_per_document
    jobs = docs / w.docs_per_job
    batches_per_job = math.ceil(w.docs_per_job * w.chunks_per_document / w.batch_size)
    mb_per_job = w.docs_per_job * w.document_kb / 1024
    gb_s_price = p["lambda_arm64_gb_s"]
    api_s = _lambda_s(m, m.lambda_overhead_ms)
    pre_s = _lambda_s(m, m.lambda_overhead_ms) + mb_per_job / m.preprocess_mb_s
    chunks_per_job = w.docs_per_job * w.chunks_per_document
    del_s = _lambda_s(m, m.lambda_overhead_ms + m.deliver_ms_per_chunk * chunks_per_job)
    gb_s = jobs * (
        api_s * m.memory_gb["api"]
        + pre_s * m.memory_gb["preprocess"]
        + del_s * m.memory_gb["deliver"]
    )
    items = {
        "Lambda GB-s": gb_s * gb_s_price,
        "Lambda requests": jobs * 3 * p["lambda_request"],
        "API Gateway": jobs * p["apigw_http_request"],
        "SQS": 0.0,  # the API path; an SQS-submitted job costs ~3 requests instead
    }
    if w.workflow == "express":
        items["Step Functions (Express)"] = jobs * (
            p["sfn_express_request"] + m.express_job_s * 0.064 * p["sfn_express_gb_s"]
        )
    else:
        items["Step Functions (Standard)"] = (
            jobs * (4 + 2 * batches_per_job) * p["sfn_standard_transition"]
        )
    items["GPU instance"] = gpu_cost(chunks, m.endpoint_chunks_per_s, w.instance_type, p)
    return Breakdown(items)


def naive_cost(w: Workload, m: Measured, p: dict[str, float]) -> Breakdown:
    """$ per 1M chunks for the naive design (x86, execution per document, call per chunk)."""
    chunks = 1_000_000.0
    docs = chunks / w.chunks_per_document
    gb_s_price = p["lambda_x86_gb_s"]
    overhead_s = _lambda_s(m, m.lambda_overhead_ms)
    pre_s = overhead_s + (w.document_kb / 1024) / m.preprocess_mb_s
    del_s = _lambda_s(m, m.lambda_overhead_ms + m.deliver_ms_per_chunk * w.chunks_per_document)
    embed_s = _lambda_s(m, m.naive_call_ms)
    gb_s = (
        docs
        * (
            overhead_s * m.memory_gb["api"]
            + pre_s * m.memory_gb["preprocess"]
            + del_s * m.memory_gb["deliver"]
        )
        + chunks * embed_s * m.memory_gb["embed"]
    )
    items = {
        "Lambda GB-s": gb_s * gb_s_price,
        "Lambda requests": (docs * 3 + chunks) * p["lambda_request"],
        "API Gateway": docs * p["apigw_http_request"],
        "SQS": 0.0,
        "Step Functions (Standard)": (docs * 3 + chunks) * p["sfn_standard_transition"],
        "GPU instance": gpu_cost(
            chunks, m.endpoint_chunks_per_s / m.batching_speedup, w.instance_type, p
        ),
    }
    return Breakdown(items)


def gpu_cost(chunks: float, chunks_per_s: float, instance_type: str, p: dict[str, float]) -> float:
    key = INSTANCE_PRICE_KEYS.get(instance_type)
    if key is None:
        raise ValueError(f"no price for {instance_type}; add it to prices.json")
    return chunks / chunks_per_s / 3600.0 * p[key]


def measured_from_benchmarks(path: Path = BENCHMARKS) -> dict[str, float]:
    """The figures `tandem cost` can read from docs/BENCHMARKS.md (missing ones are skipped)."""
    out: dict[str, float] = {}
    if not path.exists():
        return out
    text = path.read_text()
    m = re.search(r"\| Tandem `normalise_text` \+ `chunk_text`[^|]*\| ([\d.]+) \|", text)
    if m:
        out["preprocess_mb_s"] = float(m.group(1))
    # endpoint-bench: dynamic / per-request at the highest concurrency of the first table
    ratios = re.findall(r"\| \d+ \| dynamic \|[^\n]*\| ([\d.]+)x \|", text)
    if ratios:
        out["batching_speedup"] = max(1.0, float(ratios[len(ratios) // 2 - 1]))
    return out


def measured(**overrides: float | None) -> Measured:
    """BENCHMARKS.md figures, then the given overrides (None: keep)."""
    values: dict[str, Any] = dict(measured_from_benchmarks())
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Measured(**values)


def table(w: Workload, m: Measured, p: dict[str, float]) -> tuple[str, dict[str, Any]]:
    t, n = tandem_cost(w, m, p), naive_cost(w, m, p)
    keys = list(dict.fromkeys([*t.items, *n.items]))
    rows = [
        f"| line item ($ per 1M chunks) | Tandem ({w.workflow}, arm64) | naive (x86) |",
        "|---|---:|---:|",
    ]
    for k in keys:
        rows.append(f"| {k} | {t.items.get(k, 0.0):.4f} | {n.items.get(k, 0.0):.4f} |")
    ratio = n.cpu / t.cpu if t.cpu else math.inf
    rows += [
        f"| **CPU side** (all but the GPU) | **{t.cpu:.4f}** | **{n.cpu:.4f}** |",
        f"| total | {t.total:.4f} | {n.total:.4f} |",
    ]
    summary = {"tandem_cpu": t.cpu, "naive_cpu": n.cpu, "cpu_ratio": ratio}
    return "\n".join(rows), summary


def report(w: Workload, m: Measured, p: dict[str, float], day: BurstyDay | None = None) -> str:
    """`tandem cost`'s output: the workload, the measured inputs, the table, the verdict, then
    the endpoint modes for a bursty day."""
    text, summary = table(w, m, p)
    modes = modes_report(w, m, p, day or BurstyDay(), load_figures())
    return "\n".join(
        [
            f"workload: {w.documents_per_month:,.0f} documents/month of {w.document_kb:g} KiB "
            f"({w.chunks_per_document:g} chunks each, {w.chunks_per_month:,.0f} "
            f"chunks/month), {w.docs_per_job} documents per job, batch {w.batch_size}, "
            f"{w.instance_type}",
            f"measured: chunker {m.preprocess_mb_s:g} MB/s, endpoint "
            f"{m.endpoint_chunks_per_s:g} chunks/s batched, batching speed-up "
            f"{m.batching_speedup:g}x",
            text,
            f"CPU side: naive / Tandem = {summary['cpu_ratio']:.1f}x "
            f"(target >= 20x: {'met' if summary['cpu_ratio'] >= 20 else 'missed'}); "
            f"per month: Tandem ${summary['tandem_cpu'] * w.chunks_per_month / 1e6:,.2f}, "
            f"naive ${summary['naive_cpu'] * w.chunks_per_month / 1e6:,.2f}",
            "",
            modes,
        ]
    )


# ---------------------------------------------------------------------- endpoint modes
@dataclass(frozen=True)
class BurstyDay:
    busy_hours: float = 8.0  # hours of traffic per day (the rest idle)
    bursts: int = 1  # busy periods per day: each starts from zero instances in async mode
    min_instances: int = 1  # real-time: EndpointMinInstances, on around the clock
    days_per_month: float = 30.0


@dataclass(frozen=True)
class ModeCost:
    """One endpoint mode's day: GPU instance-hours and dollars by line item."""

    instance_hours: float
    items: dict[str, float]
    first_batch_wait_s: float  # after an idle period: the cold start (0 when an instance is on)

    @property
    def total(self) -> float:
        return sum(self.items.values())


def endpoint_modes(
    w: Workload, m: Measured, p: dict[str, float], day: BurstyDay, figures: dict[str, float]
) -> dict[str, ModeCost]:
    """Realtime and async (scale to zero) for one bursty day: the workload's daily chunks all
    arrive in the busy hours."""
    if not 0 < day.busy_hours <= 24:
        raise ValueError("busy_hours must be within (0, 24]")
    chunks = w.chunks_per_month / day.days_per_month
    batches = math.ceil(chunks / w.batch_size)
    busy_s = day.busy_hours * 3600
    # instances the busy hours need at the endpoint's batched throughput (at least one)
    needed = max(1, math.ceil(chunks / busy_s / m.endpoint_chunks_per_s))
    idle_h = 24 - day.busy_hours
    realtime_h = max(needed, day.min_instances) * day.busy_hours + day.min_instances * idle_h
    # async: the busy hours, then each burst's tail before scale-in, and its instance's launch
    # (billed while it starts), never more than the day
    launch_s, tail_s = figures["gpu_instance_launch_s"], figures["scale_in_tail_s"]
    per_burst_h = (launch_s + tail_s) / 3600
    async_h = min(24.0 * needed, needed * (day.busy_hours + day.bursts * per_burst_h))
    submit_complete_s = 2 * m.lambda_overhead_ms / 1000  # two short Lambdas per batch
    sweeps = 24 * 60  # rate(1 minute)
    async_items = {
        "GPU instance": async_h * _instance_price(ASYNC_INSTANCE_PRICE_KEYS, w.instance_type, p),
        "Lambda (submit, complete, sweep)": (2 * batches + sweeps) * p["lambda_request"]
        + (batches * submit_complete_s + sweeps * m.lambda_overhead_ms / 1000)
        * 0.256
        * p["lambda_arm64_gb_s"],
        "SNS notifications": batches * p["sns_publish"],
        "DynamoDB (inference table)": 3 * batches * p["dynamodb_write_request"],
    }
    return {
        "realtime": ModeCost(
            realtime_h,
            {"GPU instance": realtime_h * _instance_price(INSTANCE_PRICE_KEYS, w.instance_type, p)},
            0.0,
        ),
        "async": ModeCost(async_h, async_items, SCALE_OUT_ALARM_S + launch_s),
    }


def _instance_price(keys: dict[str, str], instance_type: str, p: dict[str, float]) -> float:
    key = keys.get(instance_type)
    if key is None:
        raise ValueError(f"no price for {instance_type}; add it to prices.json")
    return p[key]


def modes_report(
    w: Workload, m: Measured, p: dict[str, float], day: BurstyDay, figures: dict[str, float]
) -> str:
    """The endpoint modes side by side for one bursty day, and the latency async costs."""
    modes = endpoint_modes(w, m, p, day, figures)
    rt, asy = modes["realtime"], modes["async"]
    keys = list(dict.fromkeys([*rt.items, *asy.items]))
    rows = [
        f"endpoint modes, one bursty day ({day.busy_hours:g} busy h, "
        f"{24 - day.busy_hours:g} idle h, {day.bursts} burst(s)), {w.instance_type}:",
        "| $ per day | realtime | async (scale to zero) |",
        "|---|---:|---:|",
        f"| GPU instance-hours | {rt.instance_hours:.2f} | {asy.instance_hours:.2f} |",
    ]
    rows += [f"| {k} | {rt.items.get(k, 0.0):.4f} | {asy.items.get(k, 0.0):.4f} |" for k in keys]
    rows += [
        f"| **total per day** | **{rt.total:.2f}** | **{asy.total:.2f}** |",
        f"| per month ({day.days_per_month:g} days) | {rt.total * day.days_per_month:,.2f} "
        f"| {asy.total * day.days_per_month:,.2f} |",
        f"| first batch after idle waits | {rt.first_batch_wait_s:.0f} s "
        f"| {asy.first_batch_wait_s:.0f} s |",
    ]
    saved = rt.total - asy.total
    verdict = (
        f"async saves ${saved:,.2f} a day ({saved / rt.total:.0%})"
        if saved > 0
        else f"realtime is cheaper by ${-saved:,.2f} a day"
    )
    return "\n".join(
        [
            *rows,
            f"{verdict}; the price is latency: the first batch of each burst waits "
            f"{asy.first_batch_wait_s / 60:.1f} min (the scale-out alarm's {SCALE_OUT_ALARM_S} s "
            f"+ {figures['gpu_instance_launch_s']:.0f} s for a new GPU instance, AWS's figure: "
            'prices.json "figures").',
        ]
    )
