"""Small jobs on the Express workflow: which jobs go there, the hand-over of a job that turns out
too big, the watchdog without DescribeExecution, and notifications once under concurrent runs.
(The local cloud runs real Express executions: tests/integration/local_cloud/test_local_express.py.)
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from conftest import BUCKET, JOBS_TABLE, STATE_MACHINE_ARN, job_item
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.storage import Storage
from tandem_common.adapters.workflows import Workflows
from tandem_common.contracts import is_express_execution
from tandem_common.models import Counts, Document, JobCreate, JobRecord, Source
from tandem_common.settings import Settings, get_settings
from tandem_common.usecases.intake import JobIntake, choose_workflow
from tandem_common.usecases.notifications import notify_job_finished
from tandem_common.usecases.preprocess import preprocess_job
from tandem_common.usecases.watchdog import run_watchdog
from test_job_races import race

EXPRESS_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:tandem-express"
JOB = "5c1b2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


def express_run_arn(job_id: str) -> str:
    return f"arn:aws:states:us-east-1:123456789012:express:tandem-express:{job_id}:0f0e0d0c"


def create_express_machine(monkeypatch: pytest.MonkeyPatch, max_bytes: int) -> None:
    """An Express state machine in moto, named in the settings, for jobs up to `max_bytes`."""
    boto3.client("stepfunctions").create_state_machine(
        name="tandem-express",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/tandem-sfn",
        type="EXPRESS",
    )
    monkeypatch.setenv("EXPRESS_STATE_MACHINE_ARN", EXPRESS_ARN)
    monkeypatch.setenv("EXPRESS_MAX_BYTES", str(max_bytes))


@pytest.fixture
def express(cloud: None, monkeypatch: pytest.MonkeyPatch) -> Settings:
    create_express_machine(monkeypatch, 1000)
    monkeypatch.setenv("EXPRESS_MAX_BATCHES", "2")
    get_settings.cache_clear()
    return get_settings()


def executions(arn: str) -> list[str]:
    out = boto3.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"]
    return sorted(e["name"] for e in out)


def settings_with(**env: str) -> Settings:
    base = {"DATA_BUCKET": BUCKET, "JOBS_TABLE": JOBS_TABLE, "BATCH_SIZE": "4"}
    return Settings.from_mapping({**base, **env})


def test_only_jobs_known_to_be_small_go_express() -> None:
    on = settings_with(EXPRESS_STATE_MACHINE_ARN=EXPRESS_ARN, EXPRESS_MAX_BYTES="1000")
    assert choose_workflow(on, 1000, 3, 4) == "express"  # at the bound
    assert choose_workflow(on, 1001, 3, 4) == "standard"  # over it
    assert choose_workflow(on, None, None, 4) == "standard"  # size unknown
    assert choose_workflow(on, 500, None, 4) == "express"  # an object: documents not counted
    # documents that cannot fit ExpressMaxBatches batches (32 by default) at one chunk each
    assert choose_workflow(on, 900, 32 * 4, 4) == "express"
    assert choose_workflow(on, 900, 32 * 4 + 1, 4) == "standard"
    # ExpressMaxBytes=0 (e.g. an asynchronous endpoint) or no Express state machine: Standard
    off = settings_with(EXPRESS_STATE_MACHINE_ARN=EXPRESS_ARN, EXPRESS_MAX_BYTES="0")
    assert choose_workflow(off, 10, 1, 4) == "standard"
    assert choose_workflow(settings_with(), 10, 1, 4) == "standard"


def test_intake_records_the_workflow_and_starts_the_job_there(express: Settings) -> None:
    intake = JobIntake(express)
    small = intake.submit(JOB, JobCreate(documents=[Document(id="a", text="tiny")]), "api")
    assert small.workflow == "express" and job_item(JOB)["workflow"] == "express"
    assert executions(EXPRESS_ARN) == [JOB] and executions(STATE_MACHINE_ARN) == []
    assert small.execution_arn and small.execution_arn.startswith(EXPRESS_ARN.rsplit(":", 2)[0])

    # an S3 source: its size from a HEAD (over the bound here), or from the S3 event
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key="inbox/big.txt", Body=b"word " * 300)
    source = JobCreate(source=Source(s3_uri=f"s3://{BUCKET}/inbox/big.txt"))
    big = intake.submit("5c1b2d3e-4f50-4a6b-8c7d-000000000001", source, "s3")
    assert big.workflow == "standard"
    hinted = intake.submit("5c1b2d3e-4f50-4a6b-8c7d-000000000002", source, "s3", size_hint=1500)
    assert hinted.workflow == "standard"
    s3.put_object(Bucket=BUCKET, Key="inbox/small.txt", Body=b"word " * 10)
    small_source = JobCreate(source=Source(s3_uri=f"s3://{BUCKET}/inbox/small.txt"))
    assert intake.submit("5c1b2d3e-4f50-4a6b-8c7d-000000000003", small_source, "s3").workflow == (
        "express"
    )
    # a missing object has no size: Standard (preprocess then fails it with the reason)
    gone = JobCreate(source=Source(s3_uri=f"s3://{BUCKET}/inbox/gone.txt"))
    assert intake.submit("5c1b2d3e-4f50-4a6b-8c7d-000000000004", gone, "s3").workflow == (
        "standard"
    )


def test_workflows_never_ask_step_functions_about_an_express_execution() -> None:
    assert is_express_execution(express_run_arn(JOB))
    assert not is_express_execution(f"{STATE_MACHINE_ARN.replace('stateMachine', 'execution')}:x")
    with pytest.raises(ValueError, match="Express execution"):
        Workflows(STATE_MACHINE_ARN).status(express_run_arn(JOB))


def test_an_express_job_too_big_for_express_is_handed_to_standard(express: Settings) -> None:
    # one small document (Express at intake) whose chunks make more batches than
    # ExpressMaxBatches (2): 32-token chunks, one per batch
    text = " ".join(f"word{i}" for i in range(60))
    request = JobCreate.model_validate(
        {
            "documents": [{"id": "a", "text": text}],
            "options": {"batch_size": 1, "chunk_tokens": 32, "chunk_overlap": 0},
        }
    )
    store = JobStore(JOBS_TABLE)
    job = JobIntake(express, store).submit(JOB, request, "api")
    assert job.workflow == "express"
    result = preprocess_job(JOB, express, store, Storage(), express_run_arn(JOB))
    assert result.mode == "standard" and result.batches == [] and result.batch_count > 2
    record = store.require(JOB)
    assert record.workflow == "standard" and record.status == "RUNNING"
    assert executions(STATE_MACHINE_ARN) == [JOB]
    assert record.execution_arn == Workflows(STATE_MACHINE_ARN).arn_of(JOB)
    # the Standard run of the same job does the work (no second hand-over), and a repeat of the
    # Express step hands it over again harmlessly (one Standard execution: named by the job id)
    again = preprocess_job(JOB, express, store, Storage(), express_run_arn(JOB))
    assert again.mode == "standard" and executions(STATE_MACHINE_ARN) == [JOB]
    standard_arn = Workflows(STATE_MACHINE_ARN).arn_of(JOB)
    run = preprocess_job(JOB, express, store, Storage(), standard_arn)
    assert run.mode == "inline" and len(run.batches) == result.batch_count


def test_a_small_express_job_stays_on_express(express: Settings) -> None:
    store = JobStore(JOBS_TABLE)
    JobIntake(express, store).submit(JOB, JobCreate(documents=[Document(id="a", text="x")]), "api")
    result = preprocess_job(JOB, express, store, Storage(), express_run_arn(JOB))
    assert result.mode == "inline" and len(result.batches) == 1
    assert store.require(JOB).workflow == "express" and executions(STATE_MACHINE_ARN) == []


def _job(job_id: str, status: str, created_ago_s: int, updated_ago_s: int, **extra: Any) -> None:
    now = datetime.now(UTC)

    def iso(ago: int) -> str:
        return (
            (now - timedelta(seconds=ago)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )

    record = {
        "job_id": job_id,
        "status": status,
        "source": "api",
        "input_uri": f"s3://{BUCKET}/jobs/{job_id}/input/documents.jsonl",
        "options": {"chunk_tokens": 256, "chunk_overlap": 32, "batch_size": 64},
        "created_at": iso(created_ago_s),
        "updated_at": iso(updated_ago_s),
        "expires_at": 2_000_000_000,
        **extra,
    }
    JobStore(JOBS_TABLE).create(JobRecord.model_validate(record))


def test_the_watchdog_fails_a_stuck_express_job_without_describing_it(express: Settings) -> None:
    stuck, busy, unstarted = (f"5c1b2d3e-4f50-4a6b-8c7d-00000000001{i}" for i in range(3))
    # an Express execution ends within 5 minutes of its start, which the record's last write
    # follows: nothing of `stuck` runs any more; `busy` was written 2 minutes ago
    _job(stuck, "RUNNING", 900, 400, workflow="express", execution_arn=express_run_arn(stuck))
    _job(busy, "RUNNING", 900, 120, workflow="express", execution_arn=express_run_arn(busy))
    # never started (its start failed): the caller may retry it, so it keeps the long deadline
    _job(unstarted, "QUEUED", 900, 900, workflow="express")
    store = JobStore(JOBS_TABLE)
    # moto (not patched here) refuses an express ARN in DescribeExecution: a call would be an
    # error in the report, not a failed job
    report = run_watchdog(22500, express, store, Workflows.for_settings(express))
    assert report.failed == [stuck] and report.errors == []
    job = store.require(stuck)
    assert job.status == "FAILED" and job.error and job.error.code == "watchdog_timeout"
    assert "Express workflow" in job.error.message and job.notified_at
    assert store.require(busy).status == "RUNNING"
    assert store.require(unstarted).status == "QUEUED"


class RecordingEvents:
    """The real (moto) EventBridge client, counting PutEvents calls."""

    def __init__(self) -> None:
        self.client = boto3.client("events")
        self.calls = 0
        self.lock = threading.Lock()

    def put_events(self, **kwargs: Any) -> Any:
        with self.lock:
            self.calls += 1
        return self.client.put_events(**kwargs)


def finished(job_id: str) -> JobRecord:
    _job(job_id, "RUNNING", 60, 60)
    store = JobStore(JOBS_TABLE)
    job, _ = store.finish(
        job_id, "SUCCEEDED", Counts(documents=1, chunks=1, embedded=1), "s3://b/m", []
    )
    return job


def test_concurrent_runs_notify_once(cloud: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # runs of deliver finishing the same job at once (Express ran its execution twice)
    from tandem.local import moto_compat

    moto_compat.serialise_dynamodb_items(monkeypatch.setattr)  # DynamoDB's item atomicity
    job = finished(JOB)
    settings, store, events = get_settings(), JobStore(JOBS_TABLE), RecordingEvents()
    results = race([lambda: notify_job_finished(job, settings, store, events)] * 4)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert events.calls == 1 and store.require(JOB).notified_at


def test_a_notification_whose_claimant_died_is_taken_over(cloud: None) -> None:
    job = finished(JOB)
    settings, store, events = get_settings(), JobStore(JOBS_TABLE), RecordingEvents()
    # a run claimed it, then died before publishing: its claim expired a second ago
    assert store.claim_notification(JOB, "dead", 0.0, 1.0)
    now = [1_000_000.0]
    assert notify_job_finished(job, settings, store, events, clock=lambda: now[0]) is None
    assert events.calls == 1 and store.require(JOB).notified_at


def test_a_run_waits_for_a_live_claim_and_publishes_nothing(cloud: None) -> None:
    job = finished(JOB)
    settings, store, events = get_settings(), JobStore(JOBS_TABLE), RecordingEvents()
    assert store.claim_notification(JOB, "alive", 100.0, 30.0)  # held until t=130
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the claimant finishes while this run waits
        waits.append(seconds)
        store.record_notification(JOB, None)

    notify_job_finished(job, settings, store, events, clock=lambda: 101.0, sleep=sleep)
    assert events.calls == 0 and len(waits) == 1


def test_a_repeated_express_execution_after_its_job_finished_ends_quietly(
    express: Settings,
) -> None:
    # Express runs an execution at least once: a repeat may start after the job ended
    from tandem_common.errors import InvalidTransition

    store = JobStore(JOBS_TABLE)
    JobIntake(express, store).submit(JOB, JobCreate(documents=[Document(id="a", text="x")]), "api")
    store.mark_running(JOB)
    store.finish(JOB, "SUCCEEDED", Counts(documents=1, chunks=1, embedded=1), "s3://b/m", [])
    again = preprocess_job(JOB, express, store, Storage(), express_run_arn(JOB))
    assert again.mode == "done" and again.batches == []
    assert store.require(JOB).status == "SUCCEEDED"
    # a Standard execution never repeats itself: there it is the error it always was
    with pytest.raises(InvalidTransition):
        preprocess_job(JOB, express, store, Storage(), Workflows(STATE_MACHINE_ARN).arn_of(JOB))


@pytest.mark.parametrize(("mode", "express_max_bytes"), [("realtime", "1048576"), ("async", "0")])
def test_endpoint_mode_async_turns_express_off(mode: str, express_max_bytes: str) -> None:
    # an async endpoint needs a callback task, which Express cannot run: every job on Standard
    from pathlib import Path

    from tandem.local.template import LocalTemplate

    root = Path(__file__).resolve().parents[2]
    functions = LocalTemplate(root / "template.yaml", overrides={"EndpointMode": mode}).functions()
    for name in ("ApiFunction", "IngestFunction"):  # the two that route jobs at intake
        env = functions[name].environment
        assert env["EXPRESS_MAX_BYTES"] == express_max_bytes, (mode, name)
        settings = settings_with(**{k: v for k, v in env.items() if k.startswith("EXPRESS_")})
        assert settings.express_enabled == (mode == "realtime")
