"""The cost model behind `tandem cost`: $ per 1M chunks, Tandem vs a naive design.

Prices come from `tandem/prices.json` (one value per line item, with its source and the date it
was checked). Durations come from docs/BENCHMARKS.md where measured (the chunker's MB/s; the
endpoint's dynamic-batching speed-up over per-request calls) and from flags otherwise.

Both designs process the same workload at the same throughput (chunks/s); only how the work is
packaged differs:

- Tandem: arm64 Lambdas; one execution per job (`docs_per_job` documents); 3 Lambda invocations
  per job (api or ingest, preprocess, deliver) + 1 per batch of `batch_size` chunks (collect, the
  last step of each Map child); one endpoint call per batch, made by Step Functions itself (no
  Lambda waits on the GPU). The execution is a Standard one (4 state transitions + 2 per batch)
  or an Express one ($1 per 1M executions + GB-s of its billed duration, rounded up to 100 ms,
  at 64 MB): `workflow` "auto" routes a job as intake does (Express up to `express_max_bytes`
  of input and `express_max_batches` batches, `choose_workflow`).
  An Express job's duration is modelled from the same figures as the Lambdas' (each step's
  Lambda time, one endpoint call per batch, `map_concurrency` at a time) plus Step Functions'
  own latency per state entered (`sfn_state_ms`, assumed).
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PRICES = Path(__file__).with_name("prices.json")
BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
EXPRESS_DEFINITION = Path(__file__).resolve().parent.parent / "statemachine" / "express.asl.json"
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
    workflow: str = "standard"  # Tandem's workflow: standard, express, or auto (as intake routes)
    map_concurrency: int = 8  # MapMaxConcurrency (template default)
    express_max_bytes: int = 1024 * 1024  # ExpressMaxBytes (template default)
    express_max_batches: int = 32  # ExpressMaxBatches (template default)

    @property
    def chunks_per_document(self) -> float:
        return max(1.0, math.ceil(self.document_kb * 1024 / self.chars_per_chunk))

    @property
    def chunks_per_month(self) -> float:
        return self.documents_per_month * self.chunks_per_document

    @property
    def chunks_per_job(self) -> float:
        return self.docs_per_job * self.chunks_per_document

    @property
    def batches_per_job(self) -> int:
        return math.ceil(self.chunks_per_job / self.batch_size)

    @property
    def job_bytes(self) -> float:
        """A job's input as intake sizes it (its documents' UTF-8 bytes; JSONL framing left out)."""
        return self.docs_per_job * self.document_kb * 1024

    def routed(self) -> str:
        """The workflow a job of this workload runs on."""
        if self.workflow != "auto":
            return self.workflow
        small = self.job_bytes <= self.express_max_bytes
        fits = self.batches_per_job <= self.express_max_batches
        return "express" if self.express_max_bytes > 0 and small and fits else "standard"


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
    endpoint_call_ms: float = 20.0  # SageMaker's per-call overhead on top of the batch's GPU time
    sfn_state_ms: float = 25.0  # Step Functions' own latency per state entered (assumed)
    memory_gb: dict[str, float] = field(
        default_factory=lambda: {
            "api": 0.5,
            "preprocess": 1.769,
            "collect": 0.5,
            "deliver": 1.769,
            "embed": 0.5,
        }
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


@dataclass(frozen=True)
class StepTimes:
    """Seconds of one Tandem job's steps (each Lambda's billed time, one endpoint call)."""

    api: float
    preprocess: float
    collect: float  # one batch
    deliver: float
    endpoint: float  # one batch's call, as the Map child waits for it


def step_times(w: Workload, m: Measured) -> StepTimes:
    overhead = m.lambda_overhead_ms / 1000.0
    mb_per_job = w.docs_per_job * w.document_kb / 1024
    batch = min(w.batch_size, w.chunks_per_job)
    return StepTimes(
        api=overhead,
        preprocess=overhead + mb_per_job / m.preprocess_mb_s,
        collect=overhead + m.deliver_ms_per_chunk * batch / 1000.0,  # writes the batch's shard
        deliver=overhead,  # the accounting: lists and counts, no vectors
        endpoint=m.endpoint_call_ms / 1000.0 + batch / m.endpoint_chunks_per_s,
    )


def express_duration_s(w: Workload, m: Measured) -> float:
    """An Express job's duration: preprocess, the Map (`map_concurrency` batches at a time, each
    its endpoint call and collect), deliver, and Step Functions' latency per state entered
    (Preprocess, the Choice, the Map, InvokeEndpoint and CollectBatch per batch, Deliver)."""
    t = step_times(w, m)
    rounds = math.ceil(w.batches_per_job / w.map_concurrency)
    states = 4 + 2 * w.batches_per_job
    return (
        t.preprocess
        + rounds * (t.endpoint + t.collect)
        + t.deliver
        + states * m.sfn_state_ms / 1000.0
    )


def express_billed(duration_s: float) -> tuple[float, float]:
    """(seconds, GB) Express bills for an execution: 100 ms steps, 64 MB steps (the minimum:
    Tandem's state holds references only)."""
    return math.ceil(duration_s * 10 - 1e-9) / 10, 0.064


def tandem_cost(w: Workload, m: Measured, p: dict[str, float]) -> Breakdown:
    """$ per 1M chunks for the Tandem design, on the workload's (routed) workflow."""
    chunks = 1_000_000.0
    jobs = chunks / w.chunks_per_job
    batches = w.batches_per_job
    t = step_times(w, m)
    gb_s = jobs * (
        t.api * m.memory_gb["api"]
        + t.preprocess * m.memory_gb["preprocess"]
        + batches * t.collect * m.memory_gb["collect"]
        + t.deliver * m.memory_gb["deliver"]
    )
    items = {
        "Lambda GB-s": gb_s * p["lambda_arm64_gb_s"],
        "Lambda requests": jobs * (3 + batches) * p["lambda_request"],
        "API Gateway": jobs * p["apigw_http_request"],
        "SQS": 0.0,  # the API path; an SQS-submitted job costs ~3 requests instead
    }
    if w.routed() == "express":
        seconds, gb = express_billed(express_duration_s(w, m))
        items["Step Functions (Express)"] = jobs * (
            p["sfn_express_request"] + seconds * gb * p["sfn_express_gb_s"]
        )
    else:
        items["Step Functions (Standard)"] = jobs * (4 + 2 * batches) * p["sfn_standard_transition"]
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
    """Tandem on Standard and on Express side by side with the naive design; the summary is for
    the workflow the workload's jobs are routed to (`Workload.routed`)."""
    standard = tandem_cost(replace(w, workflow="standard"), m, p)
    express = tandem_cost(replace(w, workflow="express"), m, p)
    naive = naive_cost(w, m, p)
    routed = w.routed()
    keys = list(dict.fromkeys([*standard.items, *express.items, *naive.items]))
    keys.append(keys.pop(keys.index("GPU instance")))
    mark = {"standard": " (runs here)" if routed == "standard" else "", "express": ""}
    mark["express"] = " (runs here)" if routed == "express" else ""
    rows = [
        f"| line item ($ per 1M chunks) | Tandem Standard{mark['standard']} | "
        f"Tandem Express{mark['express']} | naive (x86) |",
        "|---|---:|---:|---:|",
    ]
    for k in keys:
        rows.append(
            f"| {k} | {standard.items.get(k, 0.0):.4f} | {express.items.get(k, 0.0):.4f} | "
            f"{naive.items.get(k, 0.0):.4f} |"
        )
    rows += [
        f"| **CPU side** (all but the GPU) | **{standard.cpu:.4f}** | **{express.cpu:.4f}** | "
        f"**{naive.cpu:.4f}** |",
        f"| total | {standard.total:.4f} | {express.total:.4f} | {naive.total:.4f} |",
    ]
    tandem = express if routed == "express" else standard
    summary = {
        "workflow": routed,
        "tandem_cpu": tandem.cpu,
        "standard_cpu": standard.cpu,
        "express_cpu": express.cpu,
        "naive_cpu": naive.cpu,
        "cpu_ratio": naive.cpu / tandem.cpu if tandem.cpu else math.inf,
    }
    return "\n".join(rows), summary


def express_retry_backoff_s(definition: Path = EXPRESS_DEFINITION) -> float:
    """The longest the Map child's InvokeEndpoint Retry can wait between its attempts (each
    backoff at its cap, full jitter's worst): a throttled batch's extra time, per Map round."""
    states = json.loads(definition.read_text())["States"]
    child = states["EmbedBatches"]["ItemProcessor"]["States"]["InvokeEndpoint"]
    total = 0.0
    for rule in child["Retry"]:
        interval, rate = rule.get("IntervalSeconds", 1), rule.get("BackoffRate", 2.0)
        cap = rule.get("MaxDelaySeconds", math.inf)
        total = max(
            total, sum(min(interval * rate**k, cap) for k in range(rule.get("MaxAttempts", 3)))
        )
    return total


def express_bounds(w: Workload, m: Measured) -> dict[str, float]:
    """How long the largest job Express takes (`express_max_batches` batches, which
    `express_max_bytes` of 8 KiB documents stays under) runs, modelled, and at worst: every Map
    round spending the endpoint Retry's whole backoff. Express stops at 300 s."""
    largest = replace(w, docs_per_job=max(1, int(w.express_max_bytes // (w.document_kb * 1024))))
    batches = min(largest.batches_per_job, w.express_max_batches)
    biggest = replace(
        largest, docs_per_job=max(1, int(batches * w.batch_size // w.chunks_per_document))
    )
    rounds = math.ceil(batches / w.map_concurrency)
    modelled = express_duration_s(biggest, m)
    return {
        "docs": float(biggest.docs_per_job),
        "batches": float(batches),
        "rounds": float(rounds),
        "modelled_s": modelled,
        "worst_s": modelled + rounds * express_retry_backoff_s(),
    }


def report(w: Workload, m: Measured, p: dict[str, float], day: BurstyDay | None = None) -> str:
    """`tandem cost`'s output: the workload, the measured inputs, the table, the verdict, the
    Express bound, then the endpoint modes for a bursty day."""
    text, summary = table(w, m, p)
    modes = modes_report(w, m, p, day or BurstyDay(), load_figures())
    bounds = express_bounds(w, m)
    per_month = summary["tandem_cpu"] * w.chunks_per_month / 1e6
    return "\n".join(
        [
            f"workload: {w.documents_per_month:,.0f} documents/month of {w.document_kb:g} KiB "
            f"({w.chunks_per_document:g} chunks each, {w.chunks_per_month:,.0f} "
            f"chunks/month), {w.docs_per_job} documents per job ({w.job_bytes / 1024:,.0f} KiB, "
            f"{w.batches_per_job} batches), batch {w.batch_size}, {w.instance_type}",
            f"measured: chunker {m.preprocess_mb_s:g} MB/s, endpoint "
            f"{m.endpoint_chunks_per_s:g} chunks/s batched, batching speed-up "
            f"{m.batching_speedup:g}x",
            text,
            f"routed to: {summary['workflow']} (Express for jobs of at most "
            f"{w.express_max_bytes:,} bytes and {w.express_max_batches} batches); an Express job "
            f"of this workload takes {express_duration_s(w, m):.2f} s (modelled)",
            f"CPU side: naive / Tandem = {summary['cpu_ratio']:.1f}x "
            f"(target >= 20x: {'met' if summary['cpu_ratio'] >= 20 else 'missed'}); "
            f"per month: Tandem ${per_month:,.2f}, "
            f"naive ${summary['naive_cpu'] * w.chunks_per_month / 1e6:,.2f}",
            f"Express bound: its largest job ({bounds['batches']:.0f} batches, "
            f"{bounds['rounds']:.0f} Map rounds) takes {bounds['modelled_s']:.1f} s modelled, "
            f"{bounds['worst_s']:.0f} s if every round spends the endpoint retries' whole "
            f"backoff; Express stops at 300 s",
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
