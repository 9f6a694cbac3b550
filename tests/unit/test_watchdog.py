"""The watchdog: jobs QUEUED/RUNNING past their deadline become FAILED (`watchdog_timeout`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from conftest import BUCKET, JOBS_TABLE, STATE_MACHINE_ARN
from tandem_common.adapters.jobs import JobStore
from tandem_common.errors import InvalidTransition
from tandem_common.models import Counts, JobRecord, ResolvedOptions

HOURS = 3600


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def old_job(
    job_id: str, status: str, age_s: int, counts: Counts | None = None, **extra: Any
) -> None:
    created = iso(datetime.now(UTC) - timedelta(seconds=age_s))
    job = JobRecord.model_validate(
        {
            "job_id": job_id,
            "status": status,
            "source": "api",
            "input_uri": f"s3://{BUCKET}/jobs/{job_id}/input/documents.jsonl",
            "options": ResolvedOptions(chunk_tokens=256, chunk_overlap=32, batch_size=64),
            "counts": counts or Counts(),
            "created_at": created,
            "updated_at": created,
            "expires_at": 2_000_000_000,
            **extra,
        }
    )
    JobStore(JOBS_TABLE).create(job)


def status_of(job_id: str) -> JobRecord:
    return JobStore(JOBS_TABLE).require(job_id)


def test_stuck_jobs_are_failed_keeping_counts_and_live_ones_are_left(
    cloud: None, load_handler: Any, lambda_context: Any
) -> None:
    counts = Counts(documents=7, chunks=12, embedded=0, failed=1)
    old_job("stuck-running", "RUNNING", 7 * HOURS, counts)  # no execution: it died
    old_job("stuck-queued", "QUEUED", 7 * HOURS)  # its execution never started
    old_job("fresh-running", "RUNNING", 60)  # within its deadline
    old_job("old-succeeded", "SUCCEEDED", 9 * HOURS, counts)  # terminal: never touched
    # an old job whose execution still runs (moto leaves it RUNNING): the state machine's own
    # TimeoutSeconds will end it; the watchdog must not fail a live execution
    sfn = boto3.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=STATE_MACHINE_ARN, name="live-exec")["executionArn"]
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    old_job("live-exec", "RUNNING", 7 * HOURS, execution_arn=arn)

    report = load_handler("watchdog").lambda_handler(
        {"deadline_seconds": 6 * HOURS}, lambda_context
    )

    assert sorted(report["failed"]) == ["stuck-queued", "stuck-running"]
    assert report["still_running"] == ["live-exec"] and report["errors"] == []
    stuck = status_of("stuck-running")
    assert stuck.status == "FAILED" and stuck.error and stuck.error.code == "watchdog_timeout"
    assert "RUNNING past its deadline" in stuck.error.message
    assert stuck.counts == counts and stuck.finished_at and stuck.notified_at
    assert status_of("stuck-queued").status == "FAILED"
    assert status_of("fresh-running").status == "RUNNING"
    assert status_of("live-exec").status == "RUNNING"
    assert status_of("old-succeeded").status == "SUCCEEDED"

    # a second run finds nothing new to fail: the write is a conditional no-op
    again = load_handler("watchdog").lambda_handler({"deadline_seconds": 6 * HOURS}, lambda_context)
    assert again["failed"] == [] and again["still_running"] == ["live-exec"]


def test_ended_execution_without_a_terminal_job_is_failed(
    cloud: None, load_handler: Any, lambda_context: Any
) -> None:
    # an execution that ended without the Catch running (aborted / timed out at the top level)
    sfn = boto3.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=STATE_MACHINE_ARN, name="aborted")["executionArn"]
    sfn.stop_execution(executionArn=arn, error="States.Timeout")
    old_job("aborted", "RUNNING", 7 * HOURS)  # execution_arn derived from STATE_MACHINE_ARN
    report = load_handler("watchdog").lambda_handler(
        {"deadline_seconds": 6 * HOURS}, lambda_context
    )
    assert report["failed"] == ["aborted"]
    job = status_of("aborted")
    assert job.error and "execution: ABORTED" in job.error.message


def test_deliver_finishing_after_the_watchdog_cannot_overwrite_failed(
    cloud: None, load_handler: Any, lambda_context: Any
) -> None:
    old_job("late-deliver", "RUNNING", 7 * HOURS)
    load_handler("watchdog").lambda_handler({"deadline_seconds": 6 * HOURS}, lambda_context)
    store = JobStore(JOBS_TABLE)
    with pytest.raises(InvalidTransition):
        store.finish("late-deliver", "SUCCEEDED", Counts(documents=1), "s3://b/m.json", [])
    assert store.require("late-deliver").status == "FAILED"


def test_watchdog_uses_the_status_index_not_a_scan(cloud: None) -> None:
    old_job("indexed", "RUNNING", 7 * HOURS)
    cutoff = iso(datetime.now(UTC) - timedelta(hours=6))
    rows = JobStore(JOBS_TABLE).non_terminal_created_before(cutoff)
    assert [r["job_id"] for r in rows] == ["indexed"] and rows[0]["status"] == "RUNNING"
    index = boto3.client("dynamodb").describe_table(TableName=JOBS_TABLE)["Table"][
        "GlobalSecondaryIndexes"
    ]
    assert [i["IndexName"] for i in index] == ["status-created_at"]


def test_template_schedules_the_watchdog_past_the_state_machine_timeout() -> None:
    from pathlib import Path

    from samcli.yamlhelper import yaml_parse

    root = Path(__file__).resolve().parents[2]
    resources = yaml_parse((root / "template.yaml").read_text())["Resources"]
    fn = resources["WatchdogFunction"]["Properties"]
    (schedule,) = fn["Events"].values()
    assert schedule["Type"] == "Schedule"
    assert schedule["Properties"]["Schedule"] == "rate(5 minutes)"
    deadline = json.loads(schedule["Properties"]["Input"])["deadline_seconds"]
    asl = json.loads((root / "statemachine/pipeline.asl.json").read_text())
    assert deadline > asl["TimeoutSeconds"] >= 3600
    actions = {
        a
        for p in fn["Policies"]
        if "Statement" in p
        for s in p["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "states:DescribeExecution",
    }
