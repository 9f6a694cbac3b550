"""The cost model's arithmetic (tandem/cost.py) and its price file."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from click.testing import CliRunner

from tandem import cost
from tandem.cli import main

P = cost.load_prices()


def test_price_file_names_source_and_date_for_every_price() -> None:
    data = json.loads(cost.PRICES.read_text())
    for name, item in data["prices"].items():
        assert item["value"] > 0, name
        assert item["source"].startswith("https://aws.amazon.com/"), name
        assert item["checked"], name
    assert P["lambda_arm64_gb_s"] == pytest.approx(0.0000133334)
    assert P["lambda_x86_gb_s"] == pytest.approx(0.0000166667)
    assert P["sfn_standard_transition"] * 1000 == pytest.approx(0.025)


def test_tandem_standard_transitions_and_requests_by_hand() -> None:
    # 10 KiB documents of 1 chunk each would hide the batching: use 1,024 chars per chunk and
    # 2 KiB documents -> 2 chunks per document; 32 documents per job -> 64 chunks = 1 batch.
    w = cost.Workload(document_kb=2, chars_per_chunk=1024, docs_per_job=32, batch_size=64)
    assert w.chunks_per_document == 2
    b = cost.tandem_cost(w, cost.Measured(), P)
    jobs = 1_000_000 / 64  # 15,625 jobs per 1M chunks
    assert b.items["Step Functions (Standard)"] == pytest.approx(jobs * 6 * 0.000025)
    # api, preprocess, deliver, and collect once per batch (the last step of each Map child)
    assert b.items["Lambda requests"] == pytest.approx(jobs * 4 * 0.0000002)
    assert b.items["API Gateway"] == pytest.approx(jobs * 0.000001)


def test_tandem_lambda_gb_s_by_hand() -> None:
    m = cost.Measured(preprocess_mb_s=1.0, lambda_overhead_ms=100, deliver_ms_per_chunk=0)
    w = cost.Workload(document_kb=1024, chars_per_chunk=1024 * 1024, docs_per_job=1)
    b = cost.tandem_cost(w, m, P)  # 1M jobs of one 1 MiB document, one chunk each
    # api, preprocess (1 MiB at 1 MB/s), collect (its one batch), deliver
    per_job = 0.1 * 0.5 + (0.1 + 1.0) * 1.769 + 0.1 * 0.5 + 0.1 * 1.769
    assert b.items["Lambda GB-s"] == pytest.approx(1e6 * per_job * 0.0000133334)


def test_naive_counts_one_call_per_chunk_and_an_execution_per_document() -> None:
    w = cost.Workload(document_kb=4, chars_per_chunk=1024)  # 4 chunks per document
    b = cost.naive_cost(w, cost.Measured(), P)
    docs = 250_000
    assert b.items["Step Functions (Standard)"] == pytest.approx((docs * 3 + 1e6) * 0.000025)
    assert b.items["Lambda requests"] == pytest.approx((docs * 3 + 1e6) * 0.0000002)


def test_gpu_hours_at_equal_throughput() -> None:
    m = cost.Measured(endpoint_chunks_per_s=1000, batching_speedup=2.0)
    w = cost.Workload()
    hours = 1e6 / 1000 / 3600
    assert cost.tandem_cost(w, m, P).items["GPU instance"] == pytest.approx(
        hours * P["sagemaker_ml_g6_xlarge_hour"]
    )
    assert cost.naive_cost(w, m, P).items["GPU instance"] == pytest.approx(
        2 * hours * P["sagemaker_ml_g6_xlarge_hour"]
    )
    with pytest.raises(ValueError):
        cost.gpu_cost(1, 1, "ml.p5.48xlarge", P)


def test_cpu_side_excludes_gpu_and_ratio_direction() -> None:
    w, m = cost.Workload(), cost.Measured()
    t = cost.tandem_cost(w, m, P)
    assert t.cpu == pytest.approx(t.total - t.items["GPU instance"])
    _, summary = cost.table(w, m, P)
    assert summary["cpu_ratio"] == pytest.approx(summary["naive_cpu"] / summary["tandem_cpu"])
    # one document per job loses most of the batching advantage on transitions
    _, single = cost.table(replace(w, docs_per_job=1), m, P)
    assert single["cpu_ratio"] < summary["cpu_ratio"]
    express = cost.tandem_cost(replace(w, workflow="express"), m, P)
    assert "Step Functions (Standard)" not in express.items
    assert math.isfinite(express.cpu)


def test_an_express_job_is_billed_per_request_and_its_duration_by_hand() -> None:
    m = cost.Measured(
        preprocess_mb_s=1e9,
        lambda_overhead_ms=100,
        deliver_ms_per_chunk=0,
        endpoint_call_ms=20,
        endpoint_chunks_per_s=1000,
        sfn_state_ms=25,
    )
    w = cost.Workload(document_kb=1, chars_per_chunk=1024, docs_per_job=1, workflow="express")
    # preprocess 0.1 + one Map round (endpoint 0.02 + 1/1000, collect 0.1) + deliver 0.1, and
    # 6 states entered (Preprocess, the Choice, the Map, InvokeEndpoint, CollectBatch, Deliver)
    assert cost.express_duration_s(w, m) == pytest.approx(0.1 + 0.021 + 0.1 + 0.1 + 6 * 0.025)
    assert cost.express_billed(0.471) == (0.5, 0.064)  # 100 ms steps, the 64 MB minimum
    assert cost.express_billed(0.5) == (0.5, 0.064)
    b = cost.tandem_cost(w, m, P)  # 1M jobs of one chunk
    per_job = P["sfn_express_request"] + 0.5 * 0.064 * P["sfn_express_gb_s"]
    assert b.items["Step Functions (Express)"] == pytest.approx(1e6 * per_job)
    assert P["sfn_express_request"] * 1e6 == pytest.approx(1.0)  # $1 per 1M requests


def test_auto_routes_a_workload_as_intake_routes_its_jobs() -> None:
    w = cost.Workload(document_kb=8, workflow="auto")  # 10 chunks per document
    assert replace(w, docs_per_job=1).routed() == "express"
    assert replace(w, docs_per_job=128).routed() == "express"  # 1 MiB: at ExpressMaxBytes
    assert replace(w, docs_per_job=129).routed() == "standard"
    assert replace(w, docs_per_job=1, express_max_bytes=0).routed() == "standard"  # switched off
    assert replace(w, docs_per_job=100, express_max_batches=8).routed() == "standard"  # 16 batches


@pytest.mark.parametrize("docs_per_job", [1, 10, 100])
def test_the_cost_targets_as_deployed(docs_per_job: int) -> None:
    # >= 20x cheaper than the naive design on the CPU side at 1, 10 and 100 documents per job,
    # and at most $1.00 per 1M chunks at 1 document per job (the template's defaults: auto)
    w = cost.Workload(docs_per_job=docs_per_job, workflow="auto")
    _, summary = cost.table(w, cost.measured(), P)
    assert summary["workflow"] == "express"
    assert summary["cpu_ratio"] >= 20
    assert summary["express_cpu"] < summary["standard_cpu"]
    if docs_per_job == 1:
        assert summary["tandem_cpu"] <= 1.00


def test_the_express_bounds_fit_its_five_minutes() -> None:
    assert cost.express_retry_backoff_s() == pytest.approx(1 + 2 + 4 + 8 + 16)  # the ASL's
    bounds = cost.express_bounds(cost.Workload(), cost.measured())
    assert bounds["batches"] <= 32 and bounds["worst_s"] < 300 / 2


def test_measured_figures_parsed_from_benchmarks(tmp_path) -> None:
    doc = tmp_path / "B.md"
    doc.write_text(
        "| Tandem `normalise_text` + `chunk_text` (cold word cache) | 7.50 | 10 | **12x** |\n"
        "| 1 | dynamic | 1 | 1 | 1 | 1 | 0 | 0.80x |\n| 8 | dynamic | 1 | 1 | 1 | 1 | 0 | 1.60x |\n"
    )
    got = cost.measured_from_benchmarks(doc)
    assert got["preprocess_mb_s"] == 7.5
    assert got["batching_speedup"] == 0.8 or got["batching_speedup"] >= 1.0


def test_cli_prints_side_by_side() -> None:
    result = CliRunner().invoke(main, ["cost", "--preprocess-mb-s", "10", "--docs-per-job", "50"])
    assert result.exit_code == 0, result.output
    assert "naive (x86)" in result.output and "CPU side: naive / Tandem" in result.output
    assert "Tandem Standard" in result.output and "Tandem Express (runs here)" in result.output
    assert "routed to: express" in result.output


# ---------------------------------------------------------------------- endpoint modes
FIGURES = cost.load_figures()


def test_the_modes_figures_name_their_source() -> None:
    data = json.loads(cost.PRICES.read_text())
    for name in ("gpu_instance_launch_s", "scale_in_tail_s"):
        item = data["figures"][name]
        assert item["value"] > 0 and item["source"].startswith("https://") and item["checked"]
    assert P["sagemaker_ml_g6_xlarge_async_hour"] > 0


def test_a_bursty_day_in_both_modes_by_hand() -> None:
    # 3,000,000 chunks a month over 30 days: 100,000 a day, 1,563 batches of 64
    w = cost.Workload(documents_per_month=300_000, document_kb=8, chars_per_chunk=900)
    assert w.chunks_per_document == 10
    m = cost.Measured(endpoint_chunks_per_s=1500, lambda_overhead_ms=60)
    day = cost.BurstyDay(busy_hours=8, bursts=2)
    figures = {"gpu_instance_launch_s": 600.0, "scale_in_tail_s": 1200.0}
    modes = cost.endpoint_modes(w, m, P, day, figures)
    price = P["sagemaker_ml_g6_xlarge_hour"]
    rt, asy = modes["realtime"], modes["async"]
    assert rt.instance_hours == 24 and rt.total == pytest.approx(24 * price)
    assert rt.first_batch_wait_s == 0
    # 8 busy hours + 2 bursts x (10 min launch + 20 min tail)
    assert asy.instance_hours == pytest.approx(9.0)
    assert asy.items["GPU instance"] == pytest.approx(9.0 * P["sagemaker_ml_g6_xlarge_async_hour"])
    batches = 1563
    assert asy.items["SNS notifications"] == pytest.approx(batches * P["sns_publish"])
    assert asy.items["DynamoDB (inference table)"] == pytest.approx(
        3 * batches * P["dynamodb_write_request"]
    )
    sweeps = 1440
    lambda_cost = (2 * batches + sweeps) * P["lambda_request"] + (
        batches * 0.12 + sweeps * 0.06
    ) * 0.256 * P["lambda_arm64_gb_s"]
    assert asy.items["Lambda (submit, complete, sweep)"] == pytest.approx(lambda_cost)
    assert asy.first_batch_wait_s == cost.SCALE_OUT_ALARM_S + 600


def test_async_wins_on_a_bursty_day_and_loses_when_there_is_no_idle_time() -> None:
    w, m = cost.Workload(), cost.Measured()
    bursty = cost.endpoint_modes(w, m, P, cost.BurstyDay(busy_hours=8), FIGURES)
    assert bursty["async"].total < bursty["realtime"].total / 2
    always = cost.endpoint_modes(w, m, P, cost.BurstyDay(busy_hours=24), FIGURES)
    assert always["async"].instance_hours == always["realtime"].instance_hours == 24
    assert always["async"].total > always["realtime"].total  # its Lambdas, SNS, DynamoDB
    # more load than one instance serves in the busy hours: both modes scale out
    heavy = cost.endpoint_modes(
        replace(w, documents_per_month=3e9), m, P, cost.BurstyDay(busy_hours=8), FIGURES
    )
    assert heavy["realtime"].instance_hours > 24
    with pytest.raises(ValueError):
        cost.endpoint_modes(w, m, P, cost.BurstyDay(busy_hours=0), FIGURES)


def test_cli_prints_both_endpoint_modes() -> None:
    result = CliRunner().invoke(main, ["cost", "--busy-hours", "6"])
    assert result.exit_code == 0, result.output
    assert "endpoint modes, one bursty day (6 busy h, 18 idle h" in result.output
    assert "| realtime | async (scale to zero) |" in result.output
    assert "async saves $" in result.output and "first batch of each burst waits" in result.output
