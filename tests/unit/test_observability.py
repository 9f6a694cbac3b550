"""Metrics, the dashboard and alarms, and the job id on every log line of a job.

- The template's dashboard and alarms name exactly the metrics `observability.METRICS` declares
  (with every value of their dimensions), plus AWS's own; nothing Tandem does not emit.
- Every declared metric is emitted by some code path: the real handlers and use-cases run
  against moto, and their EMF lines (Powertools on stdout) are read back.
- A job's end is counted once, however often its step runs.
- Every log line of a step carries the job's id, though no call passes it.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from conftest import BUCKET, JOBS_TABLE, ROOT, fake_endpoint_run
from samtranslator.yaml_helper import yaml_parse
from tandem_common import observability
from tandem_common.adapters.jobs import JobStore
from tandem_common.adapters.webhooks import HttpResult
from tandem_common.contracts import FAILURE_CLASS_NAMES, failure_class
from tandem_common.models import Counts, JobRecord
from tandem_common.observability import METRICS, emit, logger
from tandem_common.settings import get_settings
from tandem_common.usecases.webhook_delivery import attempt_delivery, webhook_queue
from test_express import create_express_machine
from test_pipeline_steps import JOB, prepared_job, queued_job

NAMESPACE = "Tandem"
SERVICE = ("service", "tandem")
SECRET = "whsec_" + "eA" * 16


def _template() -> dict[str, Any]:
    return dict(yaml_parse((ROOT / "template.yaml").read_text()))


def _declared() -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """Every (metric, dimensions) the code can emit: each metric with each value combination."""
    out = set()
    for m in METRICS:
        names = list(m.dimensions)
        for values in itertools.product(*(m.dimensions[n] for n in names)):
            out.add((m.name, frozenset(zip(names, values, strict=True))))
    return out


def _dashboard_metrics(template: dict[str, Any]) -> list[list[Any]]:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    widgets = json.loads(body)["widgets"]
    return [row for w in widgets for row in w["properties"]["metrics"]]


def _tandem(namespace: str, name: str, dims: dict[str, str]) -> tuple[str, frozenset[Any]]:
    assert namespace == NAMESPACE
    assert dims.pop(SERVICE[0]) == SERVICE[1], name  # Powertools' service dimension, always
    return name, frozenset(dims.items())


def test_the_dashboard_and_alarms_show_exactly_the_emitted_metrics() -> None:
    template = _template()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    assert env["POWERTOOLS_SERVICE_NAME"] == SERVICE[1]
    shown: set[tuple[str, frozenset[Any]]] = set()
    aws_namespaces = set()
    for row in _dashboard_metrics(template):
        namespace, name, *rest = row
        pairs = [x for x in rest if not isinstance(x, dict)]
        dims = dict(zip(pairs[::2], pairs[1::2], strict=True))
        if namespace == NAMESPACE:
            shown.add(_tandem(namespace, name, dims))
        else:
            aws_namespaces.add(namespace)
    alarmed = set()
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::CloudWatch::Alarm" and props["Namespace"] == NAMESPACE:
            dims = {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
            alarmed.add(_tandem(NAMESPACE, props["MetricName"], dims))
    # every metric the code emits is on the dashboard or in an alarm, and nothing else is
    assert shown | alarmed == _declared()
    assert shown == _declared()  # the dashboard shows them all
    assert {name for name, _ in alarmed} == {"JobsFailed", "StuckJobs"}
    assert aws_namespaces == {"AWS/States", "AWS/Lambda", "AWS/SQS", "AWS/SageMaker"}


def test_the_aws_metrics_cover_both_workflows_every_function_and_the_endpoint() -> None:
    template = _template()
    rows = [r for r in _dashboard_metrics(template) if r[0] != NAMESPACE]
    machines = {r[3] for r in rows if r[0] == "AWS/States"}
    assert machines == {"${PipelineStateMachine}", "${ExpressStateMachine}"}
    functions = {r[3] for r in rows if r[0] == "AWS/Lambda"}
    # a function of EndpointMode=async only is named through the Sub's own variable
    lambdas = {
        f"${{{k}Name}}" if "Condition" in v else f"${{{k}}}"
        for k, v in template["Resources"].items()
        if v["Type"].endswith("::Function")
    }
    assert functions == lambdas
    endpoint = {r[1] for r in rows if r[0] == "AWS/SageMaker"}
    assert {"Invocations", "ModelLatency", "Invocation5XXErrors"} <= endpoint
    queues = {r[3] for r in rows if r[0] == "AWS/SQS"}
    assert queues == {"${JobDeadLetterQueue.QueueName}", "${WebhookDeadLetterQueue.QueueName}"}
    alarms = {
        (p["Namespace"], p["MetricName"])
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        for p in [r["Properties"]]
    }
    # the DLQ not empty, failed jobs, endpoint 5xx, stuck jobs (and the ones kept from before)
    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("Tandem", "JobsFailed"),
        ("AWS/SageMaker", "Invocation5XXErrors"),
        ("Tandem", "StuckJobs"),
        ("AWS/States", "ExecutionsFailed"),
    } <= alarms


def test_emit_refuses_a_dimension_the_metric_does_not_declare() -> None:
    with pytest.raises(ValueError, match="takes dimensions"):
        emit(observability.JOBS_STARTED, EntryPath="api")
    with pytest.raises(ValueError, match="not one of its values"):
        emit(observability.JOBS_STARTED, EntryPath="ftp", Workflow="standard")
    with pytest.raises(ValueError, match="takes dimensions"):
        emit(observability.JOBS_SUCCEEDED, JobId="x")  # never a per-job dimension


def test_failure_reasons_fall_in_few_classes() -> None:
    examples = {
        "batch failed: SageMakerRuntime.ModelErrorException: Received client error": "endpoint",
        "batch output missing": "batch_output",
        "batch output has 3x8, expected 4 rows": "batch_output",
        "invalid UTF-8 at byte 7": "encoding",
        "invalid UTF-16 at byte 2": "encoding",
        "text contains NUL bytes": "bad_text",
        "malformed JSON: Expecting value": "malformed",
        'expected an object {"id", "text"}': "malformed",
        "'id' must be a non-empty string of at most 256 chars": "malformed",
        "duplicate document id": "duplicate_id",
        "empty document": "empty",
        "something new": "other",
    }
    assert {r: failure_class(r) for r in examples} == examples
    assert set(examples.values()) == set(FAILURE_CLASS_NAMES)


def emitted(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(metric, dimensions without service, value) of every EMF line in `text`."""
    out = []
    for line in text.splitlines():
        if '"_aws"' not in line:
            continue
        doc = json.loads(line)
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "TandemTest"  # POWERTOOLS_METRICS_NAMESPACE (conftest)
        dims = {d: doc[d] for d in directive["Dimensions"][0]}
        assert dims.pop("service") == "tandem-test"
        for metric in directive["Metrics"]:
            value = doc[metric["Name"]]
            out.append(
                (metric["Name"], dims, float(sum(value) if isinstance(value, list) else value))
            )
    return out


@pytest.fixture
def express_machine(cloud: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    create_express_machine(monkeypatch, 100)  # some of the jobs below are bigger
    queue = boto3.client("sqs").create_queue(QueueName="tandem-WebhookQueue")["QueueUrl"]
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", queue)
    get_settings.cache_clear()
    yield


def stuck_job(job_id: str) -> None:
    """A job RUNNING for 7 hours whose execution is gone."""
    old = (datetime.now(UTC) - timedelta(hours=7)).isoformat().replace("+00:00", "Z")
    record = {
        "job_id": job_id,
        "status": "RUNNING",
        "source": "api",
        "input_uri": f"s3://{BUCKET}/jobs/{job_id}/input/documents.jsonl",
        "options": {"chunk_tokens": 256, "chunk_overlap": 32, "batch_size": 64},
        "created_at": old,
        "updated_at": old,
        "expires_at": 2_000_000_000,
    }
    JobStore(JOBS_TABLE).create(JobRecord.model_validate(record))


def test_every_declared_metric_is_emitted_by_some_code_path(
    express_machine: None,
    load_handler: Any,
    lambda_context: Any,
    event: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # jobs started: through the api (inline, small: Express), S3 and SQS (Standard)
    load_handler("api").lambda_handler(event("api", "create_job_inline"), lambda_context)
    boto3.client("s3").put_object(Bucket=BUCKET, Key="inbox/upload-1/docs.jsonl", Body=b"x" * 64)
    load_handler("ingest").lambda_handler(event("ingest", "s3_object_created"), lambda_context)
    load_handler("ingest").lambda_handler(event("ingest", "sqs_single"), lambda_context)
    # a job's batches: one collected with retries and timing, one throttled to failure
    pre = prepared_job(load_handler, lambda_context, event)
    first, second = pre["batches"]
    fake_endpoint_run(first["inputs_uri"], first["outputs_uri"])
    collect = load_handler("collect")
    sent = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    request = {"inputs_uri": first["inputs_uri"], "outputs_uri": first["outputs_uri"]}
    collect.lambda_handler(
        {"job_id": JOB, "index": 0, "request": request, "attempt": 2, "timing": {"sent_at": sent}},
        lambda_context,
    )
    throttled = {"Error": "SageMakerRuntime.ThrottlingException", "Cause": "Rate exceeded"}
    request = {"inputs_uri": second["inputs_uri"], "outputs_uri": second["outputs_uri"]}
    collect.lambda_handler(
        {"job_id": JOB, "index": 1, "request": request, "error": throttled}, lambda_context
    )
    # its end: PARTIAL (a rejected document, a throttled batch)
    load_handler("deliver").lambda_handler(event("deliver", "deliver"), lambda_context)
    # a job that succeeds, one the fail step fails, one the watchdog finds stuck
    ok = "0b9e6d3c-5f1a-4c2e-9a7b-000000000001"
    pre = prepared_job(load_handler, lambda_context, event, ok)
    for ref in pre["batches"]:
        fake_endpoint_run(ref["inputs_uri"], ref["outputs_uri"])
    store = JobStore(JOBS_TABLE)
    boto3.client("s3").put_object(
        Bucket=BUCKET,
        Key=f"jobs/{ok}/batches/failures.jsonl",
        Body=b"",  # no rejected document this time
    )
    load_handler("deliver").lambda_handler({"job_id": ok}, lambda_context)
    failed = "0b9e6d3c-5f1a-4c2e-9a7b-000000000002"
    queued_job(failed, "inbox/f.txt", b"some text")
    store.mark_running(failed)
    load_handler("fail").lambda_handler(
        {"job_id": failed, "error": {"Error": "States.Timeout"}}, lambda_context
    )
    stuck_job("0b9e6d3c-5f1a-4c2e-9a7b-000000000003")
    load_handler("watchdog").lambda_handler({"deadline_seconds": 6 * 3600}, lambda_context)
    # webhook attempts: delivered, retried, failed at the last attempt, stopped by a 410
    settings = get_settings()
    for n, status in enumerate((200, 500, 410)):
        job_id = f"0b9e6d3c-5f1a-4c2e-9a7b-00000000010{n}"
        webhook_job(store, job_id)
        attempt_delivery(
            json.dumps({"job_id": job_id, "attempt": 1}),
            settings,
            store,
            webhook_queue(settings),
            send=lambda *a, status=status, **k: HttpResult(status=status),
        )
    last = "0b9e6d3c-5f1a-4c2e-9a7b-000000000200"
    webhook_job(store, last, attempts=settings.webhooks.max_attempts - 1)
    attempt_delivery(
        json.dumps({"job_id": last, "attempt": settings.webhooks.max_attempts}),
        settings,
        store,
        webhook_queue(settings),
        send=lambda *a, **k: HttpResult(status=503),
    )

    seen = emitted(capsys.readouterr().out)
    names = {name for name, _, _ in seen}
    assert names == {m.name for m in METRICS}
    started = {(d["EntryPath"], d["Workflow"]) for n, d, _ in seen if n == "JobsStarted"}
    assert {path for path, _ in started} == {"api", "s3", "sqs"}
    assert {workflow for _, workflow in started} == {"standard", "express"}
    reasons = {d["Reason"]: v for n, d, v in seen if n == "DocumentsFailed"}
    assert reasons == {"bad_text": 1.0, "endpoint": 1.0}  # "bad" (NUL bytes), "c" (throttled)
    outcomes = {d["Outcome"] for n, d, _ in seen if n == "WebhookAttempts"}
    assert outcomes == {"delivered", "retrying", "failed", "stopped"}
    latency = [v for n, _, v in seen if n == "BatchLatency"]
    assert len(latency) == 1 and latency[0] >= 2000  # sent 2 s before the shard was written
    assert [v for n, _, v in seen if n == "EndpointRetries"] == [2.0]


def webhook_job(store: JobStore, job_id: str, attempts: int = 0) -> None:
    from tandem_common.models import WebhookOutcome

    queued_job(job_id, f"inbox/{job_id}.txt", b"text")
    store.mark_running(job_id)
    store.finish(job_id, "SUCCEEDED", Counts(documents=1), "s3://b/m.json", [])
    boto3.client("dynamodb").update_item(
        TableName=JOBS_TABLE,
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET webhook_url = :u, webhook_secret = :s",
        ExpressionAttributeValues={":u": {"S": "https://example.com/h"}, ":s": {"S": SECRET}},
    )
    outcome = WebhookOutcome(id="msg_x", created_at="2026-01-01T00:00:00Z", attempts=attempts)
    store.start_webhook(job_id, outcome)


def test_a_job_end_counts_once_however_often_its_step_runs(
    cloud: None,
    load_handler: Any,
    lambda_context: Any,
    event: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pre = prepared_job(load_handler, lambda_context, event)
    for ref in pre["batches"]:
        fake_endpoint_run(ref["inputs_uri"], ref["outputs_uri"])
    deliver = load_handler("deliver")
    capsys.readouterr()
    for _ in range(3):  # the step retried after a crash, or an Express execution run twice
        deliver.lambda_handler(event("deliver", "deliver"), lambda_context)
    ends = [(n, v) for n, _, v in emitted(capsys.readouterr().out)]
    assert ends.count(("JobsPartial", 1.0)) == 1
    assert [v for n, v in ends if n == "ChunksEmbedded"] == [3.0]
    assert [v for n, v in ends if n == "DocumentsFailed"] == [1.0]


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every log line, formatted as Powertools formats it (its appended keys included)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    underlying = logging.getLogger(logger.name)
    level = underlying.level
    underlying.addHandler(handler)
    underlying.setLevel(logging.INFO)
    yield stream
    underlying.removeHandler(handler)
    underlying.setLevel(level)


def test_every_log_line_of_a_job_carries_its_job_id(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any, log_lines: io.StringIO
) -> None:
    pre = prepared_job(load_handler, lambda_context, event)  # intake + preprocess
    fake_endpoint_run(pre["batches"][0]["inputs_uri"], pre["batches"][0]["outputs_uri"])
    collect = load_handler("collect")
    for ref in pre["batches"]:  # batch 1 has no output: its failure is logged
        request = {"inputs_uri": ref["inputs_uri"], "outputs_uri": ref["outputs_uri"]}
        collect.lambda_handler(
            {"job_id": JOB, "index": ref["index"], "request": request}, lambda_context
        )
    load_handler("deliver").lambda_handler(event("deliver", "deliver"), lambda_context)
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    messages = {line["message"] for line in lines}
    assert {"preprocessed", "batch failed", "delivered", "job notified"} <= messages
    assert {line.get("job_id") for line in lines} == {JOB}
    # and the next invocation starts clean (inject_lambda_context(clear_state=True))
    log_lines.truncate(0)
    log_lines.seek(0)
    load_handler("ingest").lambda_handler(
        event("ingest", "s3_object_outside_inbox"), lambda_context
    )
    (line,) = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert line["message"] == "ignored object outside the inbox" and "job_id" not in line
