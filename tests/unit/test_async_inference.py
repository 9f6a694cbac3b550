"""EndpointMode=async, the Lambda side: the submit and complete functions and their use-case
(tandem_common/usecases/async_inference.py) against moto (S3, DynamoDB, SageMaker runtime's
InvokeEndpointAsync, and Step Functions' own interpreter for real task tokens: each token comes
from an execution waiting in a `.waitForTaskToken` task)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from conftest import BUCKET, load_event, template_tables
from moto import mock_aws
from tandem_common.adapters import aws
from tandem_common.adapters.inferences import InferenceConflict, InferenceStore
from tandem_common.adapters.storage import Storage
from tandem_common.adapters.workflows import TaskCallbacks
from tandem_common.contracts import (
    ASYNC_CLIENT_ERROR,
    ASYNC_INFERENCE_FAILED,
    ASYNC_INFERENCE_LOST,
    ASYNC_SERVER_ERROR,
    inference_id,
)
from tandem_common.errors import EndpointRejected, EndpointThrottled, EndpointUnavailable
from tandem_common.models import AsyncNotification, InferenceRecord, SubmitInput
from tandem_common.settings import get_settings
from tandem_common.usecases import async_inference as uc

from tandem.local import moto_compat

TABLE = "tandem-InferenceTable"
JOB = "1f8a2c4e-6b7d-4e9f-8a1b-2c3d4e5f6071"
WAITING = {
    "StartAt": "Wait",
    "States": {
        "Wait": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl.$": "$.queue_url",
                "MessageBody": {"token.$": "$$.Task.Token"},
            },
            "TimeoutSecondsPath": "$.timeout_s",
            "End": True,
        }
    },
}


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("INFERENCE_TABLE", TABLE)
    get_settings.cache_clear()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        moto_compat.apply()  # closed tokens answer TaskTimedOut, as in Step Functions
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        boto3.client("dynamodb").create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST", **template_tables()["inference_id"]
        )
        yield


@pytest.fixture
def waiting_task() -> Callable[..., tuple[str, str]]:
    """Start an execution that waits on a task token; returns (token, execution ARN)."""
    sqs, sfn = boto3.client("sqs"), boto3.client("stepfunctions")
    url = sqs.create_queue(QueueName="tokens")["QueueUrl"]
    machine = sfn.create_state_machine(
        name="waiting", definition=json.dumps(WAITING), roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]

    def start(timeout_s: int = 60) -> tuple[str, str]:
        arn = sfn.start_execution(
            stateMachineArn=machine,
            name=str(uuid.uuid4()),
            input=json.dumps({"queue_url": url, "timeout_s": timeout_s}),
        )["executionArn"]
        for _ in range(400):
            got = sqs.receive_message(QueueUrl=url).get("Messages", [])
            if got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
                return json.loads(got[0]["Body"])["token"], arn
            time.sleep(0.05)
        raise AssertionError("no token")

    return start


def _ended(arn: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    for _ in range(400):
        d = sfn.describe_execution(executionArn=arn)
        if d["status"] != "RUNNING":
            return dict(d)
        time.sleep(0.05)
    raise AssertionError("still running")


def _failure(arn: str) -> dict[str, Any]:
    events = boto3.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    (failed,) = [e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed"]
    return dict(failed)


def _pending(token: str, index: int = 0, **fields: Any) -> InferenceRecord:
    record = InferenceRecord(
        inference_id=inference_id(JOB, index, 0),
        task_token=token,
        job_id=JOB,
        index=index,
        submitted_at="2026-12-01T00:00:00.000Z",
        deadline=int(time.time()) + 600,
        expires_at=int(time.time()) + 86400,
        output_location=f"s3://{BUCKET}/async/output/{index}.out",
        failure_location=f"s3://{BUCKET}/async/failures/{index}-error.out",
        **fields,
    )
    InferenceStore(TABLE).record(record)
    return record


def _note(record: InferenceRecord, failure: str | None = None) -> AsyncNotification:
    message: dict[str, Any] = {
        "inferenceId": record.inference_id,
        "invocationStatus": "Failed" if failure else "Completed",
        "responseParameters": {"contentType": "application/json"},
    }
    if failure:
        message["failureReason"] = failure
        message["responseParameters"]["failureLocation"] = record.failure_location
    else:
        message["responseParameters"]["outputLocation"] = record.output_location
    return AsyncNotification.model_validate(message)


def _put(uri: str, body: bytes) -> None:
    Storage().put_bytes(uri, body, "application/json")


def _complete(*notes: AsyncNotification | None) -> dict[str, int]:
    report = uc.complete(notes, InferenceStore(TABLE), TaskCallbacks(), Storage())
    return {k: v for k, v in report.model_dump().items() if v}


# ---------------------------------------------------------------------- names and classes
def test_inference_ids_name_the_job_the_batch_and_the_try() -> None:
    assert inference_id(JOB, 7, 2) == f"{JOB}-00007-2"
    assert len(inference_id(JOB, 99_999, 99)) <= 64  # InvokeEndpointAsync's limit
    with pytest.raises(ValueError, match="longer than 64"):
        inference_id("x" * 60, 1, 0)


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("ClientError: Received server error (500) from model. See the logs.", ASYNC_SERVER_ERROR),
        ("ClientError: Received server error (503) from model.", ASYNC_SERVER_ERROR),
        ("ClientError: Received client error (429) from model.", ASYNC_SERVER_ERROR),
        ("ClientError: Received client error (400) from model.", ASYNC_CLIENT_ERROR),
        ("ClientError: Received client error (413) from model.", ASYNC_CLIENT_ERROR),
        ("ModelError: the model did not answer within 900 s", ASYNC_INFERENCE_FAILED),
        ("Request expired", ASYNC_INFERENCE_FAILED),
        ("", ASYNC_INFERENCE_FAILED),
    ],
)
def test_a_failed_inference_is_named_by_its_class(reason: str, error: str) -> None:
    assert uc.failure_error(reason) == error


# ---------------------------------------------------------------------- submit
def test_submit_queues_the_batch_with_its_claim_check_body_and_keeps_the_token(
    moto: None, load_handler: Any, lambda_context: Any
) -> None:
    event = load_event("submit", "submit")
    result = load_handler("submit").lambda_handler(event, lambda_context)
    iid = f"{event['job_id']}-00000-0"
    assert result["inference_id"] == iid
    body = Storage().get_json(result["input_location"])
    assert result["input_location"].endswith(f"jobs/{event['job_id']}/batches/request-00000.json")
    assert body == event["request"]  # InputLocation: the claim-check body itself
    record = InferenceStore(TABLE).get(iid)
    assert record is not None and record.state == "pending"
    assert record.task_token == event["task_token"]
    assert record.output_location == result["output_location"]
    limits = get_settings().async_inference
    assert limits.deadline_s == 3600 + 900 + 120
    assert abs(record.deadline - (time.time() + limits.deadline_s)) < 60
    # a re-run of the same invocation (same token) is accepted; another token for the id is not
    InferenceStore(TABLE).record(record)
    with pytest.raises(InferenceConflict):
        InferenceStore(TABLE).record(record.model_copy(update={"task_token": "other"}))


@pytest.mark.parametrize(
    ("code", "status", "raised"),
    [
        ("ThrottlingException", 400, EndpointThrottled),
        ("ServiceUnavailable", 503, EndpointUnavailable),
        ("InternalFailure", 500, EndpointUnavailable),
        ("ValidationError", 400, EndpointRejected),
    ],
)
def test_submit_errors_are_classed_and_close_the_try(
    moto: None, code: str, status: int, raised: type[Exception]
) -> None:
    runtime = boto3.client("sagemaker-runtime")
    aws.set_client("sagemaker-runtime", runtime)
    request = SubmitInput.model_validate(load_event("submit", "submit"))
    with Stubber(runtime) as stub:
        stub.add_client_error("invoke_endpoint_async", code, "refused", http_status_code=status)
        with pytest.raises(raised) as err:
            uc.submit_batch(request, get_settings(), Storage(), InferenceStore(TABLE))
    assert code in str(err.value)
    record = InferenceStore(TABLE).get(inference_id(request.job_id, 0, 0))
    assert record is not None and record.state == "abandoned"  # the sweep leaves it alone


# ---------------------------------------------------------------------- complete
def test_a_success_notification_resumes_the_task_once(moto: None, waiting_task: Any) -> None:
    token, arn = waiting_task()
    record = _pending(token)
    assert _complete(_note(record)) == {"succeeded": 1}
    done = _ended(arn)
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"]) == {
        "inference_id": record.inference_id,
        "output_location": record.output_location,
        "found_by": "notification",
    }
    assert InferenceStore(TABLE).get(record.inference_id).state == "succeeded"
    # the same notification again, or one that is not this stack's: nothing happens
    assert _complete(_note(record)) == {"duplicate": 1}
    stranger = record.model_copy(update={"inference_id": "someone-else-1"})
    assert _complete(_note(stranger), None) == {"unknown": 2}
    assert uc.parse_notification("not json") is None
    assert uc.parse_notification('{"Records": []}') is None
    assert TaskCallbacks().succeed(token, {}) is False  # the token is closed


class _Refused(TaskCallbacks):
    """Step Functions' answer to a second callback on a token: it took one already."""

    def succeed(self, token: str, output: dict[str, Any]) -> bool:
        return False


def test_copies_of_a_notification_at_once_leave_the_try_succeeded(
    moto: None, waiting_task: Any
) -> None:
    """Two copies handled at the same moment: the second's callback is refused and it marks the
    try abandoned between the first's accepted callback and the first's own close. The try is
    still recorded as the one that succeeded."""
    token, arn = waiting_task()
    record = _pending(token)
    copy_reports: list[dict[str, int]] = []

    class CopyInBetween(TaskCallbacks):
        def succeed(self, token: str, output: dict[str, Any]) -> bool:
            accepted = super().succeed(token, output)
            report = uc.complete([_note(record)], InferenceStore(TABLE), _Refused(), Storage())
            copy_reports.append({k: v for k, v in report.model_dump().items() if v})
            return accepted

    report = uc.complete([_note(record)], InferenceStore(TABLE), CopyInBetween(), Storage())
    assert report.succeeded == 1 and copy_reports == [{"duplicate": 1}]
    assert _ended(arn)["status"] == "SUCCEEDED"
    assert InferenceStore(TABLE).get(record.inference_id).state == "succeeded"


@pytest.mark.parametrize(
    ("status", "error"), [(400, ASYNC_CLIENT_ERROR), (500, ASYNC_SERVER_ERROR)]
)
def test_an_error_notification_fails_the_task_by_class_with_the_models_answer(
    moto: None, waiting_task: Any, status: int, error: str
) -> None:
    token, arn = waiting_task()
    record = _pending(token)
    _put(record.failure_location or "", b'{"error": {"code": "invalid_input_file"}}')
    kind = "client" if status < 500 else "server"
    reason = f"ClientError: Received {kind} error ({status}) from model. See the logs."
    assert _complete(_note(record, reason)) == {"failed": 1}
    assert _ended(arn)["status"] == "FAILED"
    failure = _failure(arn)
    assert failure["error"] == error
    assert failure["cause"] == reason + ': {"error": {"code": "invalid_input_file"}}'
    assert InferenceStore(TABLE).get(record.inference_id).state == "failed"


def test_a_notification_for_a_task_that_timed_out_changes_nothing(
    moto: None, waiting_task: Any
) -> None:
    token, arn = waiting_task(timeout_s=1)
    record = _pending(token)
    assert _ended(arn)["status"] == "FAILED"  # States.Timeout: its token is closed
    assert _complete(_note(record)) == {"duplicate": 1}
    assert InferenceStore(TABLE).get(record.inference_id).state == "abandoned"


# ---------------------------------------------------------------------- sweep
def _sweep(clock: Callable[[], float] = time.time, grace_s: float = 0) -> dict[str, int]:
    report = uc.sweep(InferenceStore(TABLE), TaskCallbacks(), Storage(), grace_s, clock=clock)
    return {k: v for k, v in report.model_dump().items() if v}


def test_the_sweep_resumes_a_try_whose_notification_was_lost(moto: None, waiting_task: Any) -> None:
    token, arn = waiting_task()
    record = _pending(token)
    _put(record.output_location or "", b'{"count": 1}')  # SageMaker wrote the result
    # within the notification grace the result is the notification's to report
    assert _sweep(grace_s=60) == {"checked": 1, "heartbeats": 1}
    assert _sweep(clock=lambda: time.time() + 61, grace_s=60) == {"checked": 1, "succeeded": 1}
    assert json.loads(_ended(arn)["output"])["found_by"] == "sweep"
    assert _sweep() == {}  # nothing pending any more
    assert _complete(_note(record)) == {"duplicate": 1}  # the late notification: nothing


def test_the_sweep_heartbeats_a_pending_try_and_fails_a_lost_one_at_its_deadline(
    moto: None, waiting_task: Any
) -> None:
    token, arn = waiting_task()
    record = _pending(token)
    assert _sweep() == {"checked": 1, "heartbeats": 1}
    assert boto3.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "RUNNING"
    assert _sweep(clock=lambda: record.deadline + 1) == {"checked": 1, "failed": 1, "lost": 1}
    assert _ended(arn)["status"] == "FAILED"
    assert _failure(arn)["error"] == ASYNC_INFERENCE_LOST


def test_the_sweep_fails_a_try_from_its_failure_file_and_drops_closed_tasks(
    moto: None, waiting_task: Any
) -> None:
    token, arn = waiting_task()
    failed = _pending(token, index=0)
    _put(failed.failure_location or "", b"CUDA out of memory")
    closed_token, closed_arn = waiting_task(timeout_s=1)
    closed = _pending(closed_token, index=1)
    assert _ended(closed_arn)["status"] == "FAILED"
    assert _sweep() == {"checked": 2, "failed": 1, "duplicate": 1}
    assert _failure(arn)["error"] == ASYNC_INFERENCE_FAILED
    assert "CUDA out of memory" in _failure(arn)["cause"]
    assert InferenceStore(TABLE).get(closed.inference_id).state == "abandoned"


def test_the_complete_handler_reads_sns_events_and_runs_the_sweep(
    moto: None, load_handler: Any, lambda_context: Any
) -> None:
    handler = load_handler("complete")
    unknown = handler.lambda_handler(load_event("complete", "notification_unknown"), lambda_context)
    assert unknown["unknown"] == 1 and unknown["succeeded"] == 0
    assert handler.lambda_handler(load_event("complete", "sweep"), lambda_context)["checked"] == 0
