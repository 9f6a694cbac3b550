"""Small jobs on the Express workflow, through a local cloud of its own (the template's defaults:
Express on), with the real model on the CPU.

- A small job runs on Express, and only its record tells its status: the local cloud refuses
  DescribeExecution/GetExecutionHistory for Express executions and ListExecutions for the Express
  state machine, as AWS does (moto_compat gap 13).
- The same small job's Express execution run twice at once (Express is at-least-once, and does
  not dedupe starts by name): one job record, one result with each chunk once, counts once, the
  event and the webhook once, the job-end metrics once.
- A job bigger than Express should take is handed to the Standard workflow.
- `tandem local metrics` sums up what the functions emitted.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tandem_common.contracts import execution_arn, is_express_execution
from test_local_webhooks import SECRET, Receiver

from tandem.cli import main
from tandem.local.http_server import BackgroundHttpServer
from tandem.local.metrics import read_points, totals

pytestmark = pytest.mark.integration

STACK = "tandemexpress"  # its own names: local clouds in one process share moto's state
EXPRESS_MAX_BATCHES = 2


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tandem.local.cloud import LocalCloud

    state = tmp_path_factory.mktemp("express") / "local-cloud.json"
    with LocalCloud(
        stack_name=STACK,
        state_file=state,
        parameter_overrides={
            "ExpressMaxBatches": str(EXPRESS_MAX_BATCHES),
            "WebhookRetrySchedule": "1,1,1",
        },
    ) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A Standard Webhooks receiver on 127.0.0.1 answering 204 (test_local_webhooks.Receiver)."""
    hooks = Receiver([(204, {})])
    server = BackgroundHttpServer(hooks.handle, name="webhook-receiver").start()
    yield hooks, f"{server.url}/hooks/tandem"
    server.close()


def _post_job(cloud: Any, body: dict[str, Any], key: str) -> str:
    req = urllib.request.Request(
        cloud.api_url + "/v1/jobs",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "idempotency-key": key},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 202
        return str(json.loads(r.read())["job_id"])


def _get_job(cloud: Any, job_id: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{cloud.api_url}/v1/jobs/{job_id}", timeout=60) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


def _error_code(call: Any) -> str:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the botocore ClientError is what is checked
        return str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))
    return "no error"


def _log_lines(cloud: Any, function: str, job_id: str, message: str) -> int:
    path = Path(cloud.log_dir) / f"{cloud.name_of(function)}.log"
    count = 0
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"job_id":"{job_id}"' in line.replace(" ", ""):
            count += json.loads(line).get("message") == message
    return count


def test_a_small_job_runs_on_express_and_only_its_record_tells_its_status(cloud: Any) -> None:
    docs = [{"id": "e1", "text": "Express runs small jobs."}, {"id": "e2", "text": "Quickly."}]
    job_id = _post_job(cloud, {"documents": docs}, f"express-{uuid.uuid4()}")
    job = cloud.jobs.wait(job_id, timeout=180)
    assert job["status"] == "SUCCEEDED" and job["workflow"] == "express", job
    assert is_express_execution(job["execution_arn"])
    assert {r["document_id"] for r in cloud.jobs.result_rows(job_id)} == {"e1", "e2"}
    assert _get_job(cloud, job_id)["status"] == "SUCCEEDED"  # the API reads the record
    sfn = cloud.client("stepfunctions")
    # as on AWS: Step Functions answers nothing about Express executions
    arn = job["execution_arn"]
    assert _error_code(lambda: sfn.describe_execution(executionArn=arn)) == "InvalidArn"
    assert _error_code(lambda: sfn.get_execution_history(executionArn=arn)) == "InvalidArn"
    assert _error_code(lambda: sfn.stop_execution(executionArn=arn)) == "InvalidArn"
    express = cloud.express_state_machine_arn
    assert _error_code(lambda: sfn.list_executions(stateMachineArn=express)) == (
        "StateMachineTypeNotSupported"
    )
    # and no Standard execution ran it
    standard = execution_arn(cloud.state_machine_arn, job_id)
    assert _error_code(lambda: sfn.describe_execution(executionArn=standard)) == (
        "ExecutionDoesNotExist"
    )


def test_two_express_executions_of_one_job_at_once_have_their_effects_once(
    cloud: Any, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    docs = [{"id": f"twice-{i}", "text": f"Document {i}, embedded once."} for i in range(5)]
    options = {"webhook_url": url, "webhook_secret": SECRET}
    before = totals(read_points(Path(cloud.log_dir)))
    # "at once": two warm preprocess workers (no cold start delays either run), and the endpoint
    # holds each call 5 s, so that both executions are inside the job together
    warm = [
        threading.Thread(target=cloud.lambda_service.invoke, args=("PreprocessFunction", {}))
        for _ in range(2)
    ]
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    cloud.faults.endpoint.set({"slow_s": 5, "count": 2})
    job_id = _post_job(cloud, {"documents": docs, "options": options}, f"twice-{uuid.uuid4()}")
    # Express does not dedupe a start by name: a second execution of the same job, at once
    sfn = cloud.client("stepfunctions")
    second = sfn.start_execution(
        stateMachineArn=cloud.express_state_machine_arn,
        name=job_id,
        input=json.dumps({"job_id": job_id}),
    )["executionArn"]
    runs = cloud.jobs.express_executions(job_id)
    assert len(runs) == 2 and second in {r["executionArn"] for r in runs}
    job = cloud.jobs.wait(job_id, timeout=240)  # terminal, and neither execution still runs
    cloud.faults.endpoint.set(None)
    assert job["status"] == "SUCCEEDED" and job["workflow"] == "express", job
    assert [r["status"] for r in cloud.jobs.express_executions(job_id)] == ["SUCCEEDED"] * 2
    assert _log_lines(cloud, "PreprocessFunction", job_id, "preprocessed") == 2  # both ran

    # one job record, one result: every document once, every chunk once, counts once
    ddb = cloud.client("dynamodb")
    items = ddb.query(
        TableName=cloud.jobs_table,
        KeyConditionExpression="job_id = :j",
        ExpressionAttributeValues={":j": {"S": job_id}},
    )["Items"]
    assert len(items) == 1
    documents = cloud.jobs.result_file(job_id, "result/documents.jsonl")
    assert sorted(d["id"] for d in documents) == sorted(d["id"] for d in docs)
    rows = cloud.jobs.result_rows(job_id)
    assert len(rows) == len({r["chunk_id"] for r in rows}) == job["counts"]["embedded"]
    assert job["counts"] == {"documents": 5, "chunks": 5, "embedded": 5, "failed": 0}
    # told once: one "job notified" (the event and the webhook queued), one webhook delivery
    assert _log_lines(cloud, "DeliverFunction", job_id, "job notified") == 1

    def delta(name: str) -> float:
        now = totals(read_points(Path(cloud.log_dir)))
        return now.get(name, 0.0) - before.get(name, 0.0)

    deadline = time.monotonic() + 60  # the webhook function runs after the job, from its queue
    while delta("WebhookAttempts") < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    webhook = cloud.jobs.get(job_id)["webhook"]
    assert webhook["state"] == "delivered" and webhook["attempts"] == 1, webhook
    assert len(hooks.deliveries) == 1 and hooks.refused == []
    # counted once: the metrics moved by this job alone
    assert delta("JobsStarted") == 1 and delta("JobsSucceeded") == 1
    assert delta("ChunksEmbedded") == 5 and delta("WebhookAttempts") == 1
    assert delta("BatchLatency") > 0  # per batch, from the InvokeEndpoint state's start


def test_a_job_too_big_for_express_is_handed_to_standard(cloud: Any) -> None:
    # one small document (Express at intake) that makes more batches than ExpressMaxBatches
    text = " ".join(f"word{i}" for i in range(60))
    body = {
        "documents": [{"id": "big", "text": text}],
        "options": {"batch_size": 1, "chunk_tokens": 32, "chunk_overlap": 0},
    }
    job_id = _post_job(cloud, body, f"handoff-{uuid.uuid4()}")
    job = cloud.jobs.wait(job_id, timeout=240)
    assert job["status"] == "SUCCEEDED" and job["workflow"] == "standard", job
    assert job["execution_arn"] == execution_arn(cloud.state_machine_arn, job_id)
    assert job["counts"]["chunks"] > EXPRESS_MAX_BATCHES
    # its Express execution ended where it handed over; the Standard one did the work
    assert [r["status"] for r in cloud.jobs.express_executions(job_id)] == ["SUCCEEDED"]
    sfn = cloud.client("stepfunctions")
    assert sfn.describe_execution(executionArn=job["execution_arn"])["status"] == "SUCCEEDED"


def test_local_metrics_sums_up_what_the_functions_emitted(cloud: Any) -> None:
    out = CliRunner().invoke(main, ["local", "metrics", "--state-file", str(cloud.state_file)])
    assert out.exit_code == 0, out.output
    for name in ("JobsStarted", "JobsSucceeded", "ChunksEmbedded", "BatchLatency"):
        assert f"| {name} |" in out.output
    assert "EntryPath=api, Workflow=express" in out.output
