"""moto_compat: unit level (no LocalCloud), plus one real interpreter run against a stub endpoint."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.response import StreamingBody

from tandem.local import moto_compat

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def _aws_sdk():
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as m,
    )

    return m


def test_apply_is_idempotent_and_sets_names():
    moto_compat.apply()
    assert moto_compat.apply() is False
    assert moto_compat.is_applied()
    m = _aws_sdk()
    assert (
        m.StateTaskServiceAwsSdk._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES["sagemakerruntime"]
        == "sagemaker-runtime"
    )
    assert (
        m.StateTaskServiceAwsSdk._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES["sfn"] == "stepfunctions"
    )  # kept
    assert (
        m.StateTaskServiceAwsSdk._normalise_service_error_name("sagemakerruntime")
        == "SageMakerRuntime"
    )


def test_error_names_follow_step_functions():
    moto_compat.apply()
    cls = _aws_sdk().StateTaskServiceAwsSdk
    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    modeled = client.exceptions.ModelError(
        {"Error": {"Code": "ModelError", "Message": "m"}}, "InvokeEndpoint"
    )
    unmodeled = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "InvokeEndpoint"
    )
    svc = cls._normalise_service_error_name("sagemakerruntime")
    assert cls._normalise_exception_name(svc, modeled) == "SageMakerRuntime.ModelErrorException"
    # an unmodeled code is the service's generic exception, as in real Step Functions (Java SDK v2)
    assert (
        cls._normalise_exception_name(svc, unmodeled)
        == "SageMakerRuntime.SageMakerRuntimeException"
    )
    unavailable = client.exceptions.ServiceUnavailable(
        {"Error": {"Code": "ServiceUnavailable", "Message": ""}}, "x"
    )
    assert (
        cls._normalise_exception_name(svc, unavailable)
        == "SageMakerRuntime.ServiceUnavailableException"
    )


def test_streaming_bodies_are_read_to_strings():
    body = StreamingBody(io.BytesIO(b'{"count": 3}'), 12)
    out = moto_compat._read_streams({"Body": body, "ContentType": "application/json", "n": [1]})
    assert out == {"Body": '{"count": 3}', "ContentType": "application/json", "n": [1]}


def test_adapt_definition_keeps_the_pipeline_parseable():
    from tandem.local.template import LocalTemplate

    tpl = LocalTemplate(ROOT / "template.yaml")
    text, notes = moto_compat.adapt_definition(tpl.state_machine_definition("PipelineStateMachine"))
    doc = json.loads(text)
    assert "ToleratedFailurePercentage" not in doc["States"]["EmbedBatchesDistributed"]
    assert any("EXPRESS" in n for n in notes)
    # the inline path is untouched
    assert (
        doc["States"]["EmbedBatches"]
        == json.loads(tpl.state_machine_definition("PipelineStateMachine"))["States"][
            "EmbedBatches"
        ]
    )


class _Stub(BaseHTTPRequestHandler):
    mode = "ok"

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if _Stub.mode == "drop":  # the process dies mid-request: no reply, connection closed
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if _Stub.mode == "ok":
            status, headers, body = (
                200,
                {"Content-Type": "application/json"},
                b'{"count": 2, "dims": 384}',
            )
        elif _Stub.mode == "throttle":
            status, headers, body = (
                429,
                {"x-amzn-ErrorType": "ThrottlingException"},
                b'{"message": "slow down"}',
            )
        else:
            status, headers, body = (
                424,
                {"x-amzn-ErrorType": "ModelError"},
                (b'{"message": "Received client error (400) from primary with message \\"bad\\""}'),
            )
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("ok", None),
        ("throttle", "SageMakerRuntime.SageMakerRuntimeException"),
        ("model", "SageMakerRuntime.ModelErrorException"),
        # the endpoint's process dies mid-request / is down: the runtime's 503, retried by the ASL
        ("drop", "SageMakerRuntime.ServiceUnavailableException"),
        ("down", "SageMakerRuntime.ServiceUnavailableException"),
    ],
)
def test_interpreter_calls_sagemaker_runtime(monkeypatch, mode, expected):
    from moto import mock_aws

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Stub.mode = mode
    port = server.server_address[1]
    if mode == "down":  # nothing listens on the port any more
        server.shutdown()
        server.server_close()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{port}")
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:sagemakerruntime:invokeEndpoint",
                "Parameters": {
                    "EndpointName": "e",
                    "ContentType": "application/json",
                    "Body": "{}",
                },
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}
                ],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            moto_compat.apply()
            sfn = boto3.client("stepfunctions", region_name="us-east-1")
            arn = sfn.create_state_machine(
                name=f"c-{mode}",
                definition=json.dumps(definition),
                roleArn="arn:aws:iam::123456789012:role/x",
            )["stateMachineArn"]
            ex = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
            for _ in range(200):
                d = sfn.describe_execution(executionArn=ex)
                if d["status"] != "RUNNING":
                    break
                time.sleep(0.05)
    finally:
        server.shutdown()
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    if expected is None:
        assert json.loads(out["Body"]) == {"count": 2, "dims": 384}
    else:
        assert out["error"]["Error"] == expected
    if mode in ("drop", "down"):
        assert "Status Code: 503" in out["error"]["Cause"], out
        assert "could not be reached" in out["error"]["Cause"], out


def test_connection_errors_become_the_runtimes_service_unavailable():
    moto_compat.apply()
    cls = _aws_sdk().StateTaskServiceAwsSdk
    err = moto_compat.unreachable_as_runtime_error(
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1/endpoints/e/invocations")
    )
    assert isinstance(err, ClientError)
    assert err.response["Error"]["Code"] == "ServiceUnavailable"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert "EndpointConnectionError" in err.response["Error"]["Message"]
    svc = cls._normalise_service_error_name("sagemakerruntime")
    assert cls._normalise_exception_name(svc, err) == "SageMakerRuntime.ServiceUnavailableException"


def test_a_distributed_maps_result_writer_reads_the_state_input():
    """Gap 5: ResultWriter.Parameters paths read the Map state's input, not its results."""
    from moto import mock_aws

    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket": "compat-bucket", "Key.$": "$.items_key"},
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Echo",
                    "States": {"Echo": {"Type": "Pass", "End": True}},
                },
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {
                        "Bucket": "compat-bucket",
                        "Prefix.$": "States.Format('jobs/{}/map-results', $.job_id)",
                    },
                },
                "ResultPath": None,
                "End": True,
            }
        },
    }
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        moto_compat.apply()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="compat-bucket")
        s3.put_object(
            Bucket="compat-bucket", Key="items.json", Body=json.dumps([{"n": 1}, {"n": 2}])
        )
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="result-writer",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/x",
        )["stateMachineArn"]
        ex = sfn.start_execution(
            stateMachineArn=arn, input=json.dumps({"job_id": "j1", "items_key": "items.json"})
        )["executionArn"]
        for _ in range(400):
            d = sfn.describe_execution(executionArn=ex)
            if d["status"] != "RUNNING":
                break
            time.sleep(0.05)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="compat-bucket").get("Contents", [])]
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == {"job_id": "j1", "items_key": "items.json"}
    assert any(k.startswith("jobs/j1/map-results/") and k.endswith("/manifest.json") for k in keys)


def test_concurrent_dynamodb_updates_lose_nothing():
    """Gap 6: moto's writes are serialised, so atomic counters behave as in DynamoDB."""
    from moto import mock_aws
    from moto.server import ThreadedMotoServer

    moto_compat.apply()
    with mock_aws():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            ddb = boto3.client(
                "dynamodb",
                region_name="us-east-1",
                endpoint_url=f"http://127.0.0.1:{port}",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            ddb.create_table(
                TableName="t",
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            )
            ddb.put_item(TableName="t", Item={"k": {"S": "x"}, "n": {"N": "0"}})

            def bump() -> None:
                for _ in range(25):
                    ddb.update_item(
                        TableName="t",
                        Key={"k": {"S": "x"}},
                        UpdateExpression="SET n = n + :one",
                        ExpressionAttributeValues={":one": {"N": "1"}},
                    )

            threads = [threading.Thread(target=bump) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            item = ddb.get_item(TableName="t", Key={"k": {"S": "x"}}, ConsistentRead=True)
        finally:
            server.stop()
    assert item["Item"]["n"] == {"N": "200"}


def test_every_moto_dynamodb_item_operation_runs_under_the_one_lock(monkeypatch):
    """Gap 6, deterministically: each item operation's request (reads too: moto serialises an
    item while a write may change it in place) is handled with the lock held."""
    from moto.dynamodb.responses import DynamoHandler

    held: dict[str, bool] = {}
    for name in moto_compat.DYNAMODB_ITEM_OPERATIONS:

        def probe(self, *args, __name=name, **kwargs):
            held[__name] = moto_compat._DYNAMODB_LOCK.locked()

        monkeypatch.setattr(DynamoHandler, name, probe)
    moto_compat.serialise_dynamodb_items(monkeypatch.setattr)
    handler = DynamoHandler()
    for name in moto_compat.DYNAMODB_ITEM_OPERATIONS:
        getattr(handler, name)()
    assert held == dict.fromkeys(moto_compat.DYNAMODB_ITEM_OPERATIONS, True)
    assert not moto_compat._DYNAMODB_LOCK.locked()


def test_a_distributed_map_worker_runs_more_items_than_the_recursion_limit():
    """Gap 7: one worker (MaxConcurrency 1) through 1,500 items: moto recursed per item."""
    import sys

    from moto import mock_aws

    items = 1_500
    assert items > sys.getrecursionlimit()
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "MaxConcurrency": 1,
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket": "compat-bucket", "Key": "many.json"},
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Echo",
                    "States": {"Echo": {"Type": "Pass", "End": True}},
                },
                "ResultPath": None,
                "End": True,
            }
        },
    }
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        moto_compat.apply()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="compat-bucket")
        s3.put_object(Bucket="compat-bucket", Key="many.json", Body=json.dumps(list(range(items))))
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="many-items",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/x",
        )["stateMachineArn"]
        ex = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            d = sfn.describe_execution(executionArn=ex)
            if d["status"] != "RUNNING":
                break
            time.sleep(0.2)
    assert d["status"] == "SUCCEEDED", d


# ---------------------------------------------------------------------- task tokens (gaps 11, 12)
CALLBACK_DEFINITION = {
    "StartAt": "Wait",
    "States": {
        "Wait": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl.$": "$.queue_url",
                "MessageBody": {"token.$": "$$.Task.Token", "retry.$": "$$.State.RetryCount"},
            },
            "TimeoutSeconds": 120,
            "Retry": [{"ErrorEquals": ["Try.Again"], "IntervalSeconds": 1, "MaxAttempts": 1}],
            "End": True,
        }
    },
}


def _callback_execution(name: str):
    """(stepfunctions client, execution arn, next_message()) for CALLBACK_DEFINITION: each
    try of its task puts {token, retry} on an SQS queue and waits for a callback."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"{name}-tokens")["QueueUrl"]
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(
        name=name,
        definition=json.dumps(CALLBACK_DEFINITION),
        roleArn="arn:aws:iam::123456789012:role/x",
    )["stateMachineArn"]
    ex = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"queue_url": url}))

    def next_message() -> dict:
        for _ in range(400):
            got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", [])
            if got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
                return json.loads(got[0]["Body"])
            time.sleep(0.05)
        raise AssertionError("no task token arrived")

    return sfn, ex["executionArn"], next_message


def _wait_done(sfn, execution_arn: str) -> dict:
    for _ in range(400):
        d = sfn.describe_execution(executionArn=execution_arn)
        if d["status"] != "RUNNING":
            return d
        time.sleep(0.05)
    raise AssertionError("execution still running")


def test_send_task_failure_keeps_its_cause():
    """Gap 8: the cause of SendTaskFailure reaches the task's failure (moto dropped it)."""
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        moto_compat.apply()
        sfn, ex, next_message = _callback_execution("cause")
        sfn.send_task_failure(
            taskToken=next_message()["token"], error="Tandem.ModelClientError", cause="bad input"
        )
        done = _wait_done(sfn, ex)
        events = sfn.get_execution_history(executionArn=ex)["events"]
    assert done["status"] == "FAILED"
    failed = [e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed"]
    assert failed == [
        {
            "resourceType": "sqs",
            "resource": "sendMessage.waitForTaskToken",
            "error": "Tandem.ModelClientError",
            "cause": "bad input",
        }
    ]


def test_each_try_of_a_callback_task_has_its_own_token_closed_when_the_try_ends():
    """Gap 9: a retried `.waitForTaskToken` task waits again, on a new token; the first try's
    token is closed (TaskTimedOut), so a late callback on it changes nothing."""
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        moto_compat.apply()
        sfn, ex, next_message = _callback_execution("tries")
        first = next_message()
        sfn.send_task_failure(taskToken=first["token"], error="Try.Again", cause="once more")
        second = next_message()  # the retry waits for its own callback
        assert (first["retry"], second["retry"]) == (0, 1)
        assert second["token"] != first["token"]
        assert sfn.describe_execution(executionArn=ex)["status"] == "RUNNING"
        with pytest.raises(ClientError) as late:
            sfn.send_task_success(taskToken=first["token"], output='{"late": true}')
        assert late.value.response["Error"]["Code"] == "TaskTimedOut"
        sfn.send_task_heartbeat(taskToken=second["token"])
        sfn.send_task_success(taskToken=second["token"], output='{"ok": 1}')
        done = _wait_done(sfn, ex)
        with pytest.raises(ClientError) as again:
            sfn.send_task_failure(taskToken=second["token"], error="Twice", cause="")
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"ok": 1}
    assert again.value.response["Error"]["Code"] == "TaskTimedOut"


def test_a_token_takes_one_outcome_even_before_its_state_has_finished():
    """Gap 12: the second of two callbacks sent back to back (as two copies of one notification,
    handled at once, send them) answers TaskTimedOut; the first outcome is the task's."""
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        moto_compat.apply()
        sfn, ex, next_message = _callback_execution("one-outcome")
        token = next_message()["token"]
        sfn.send_task_success(taskToken=token, output='{"first": 1}')
        with pytest.raises(ClientError) as second:
            sfn.send_task_success(taskToken=token, output='{"second": 2}')
        with pytest.raises(ClientError) as failure:
            sfn.send_task_failure(taskToken=token, error="Late", cause="")
        done = _wait_done(sfn, ex)
    assert second.value.response["Error"]["Code"] == "TaskTimedOut"
    assert failure.value.response["Error"]["Code"] == "TaskTimedOut"
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"first": 1}


# ---------------------------------------------------------------------- SNS -> Lambda (gap 10)
def test_an_sns_lambda_subscription_is_delivered_by_its_route():
    """Gap 7: moto would invoke the subscribed function through its own (Docker) Lambda; the
    route gets the message instead, and SnsLambdaDelivery turns it into SNS's Lambda event."""
    from moto import mock_aws

    from tandem.local.event_sources import SnsLambdaDelivery

    function_arn = "arn:aws:lambda:us-east-1:123456789012:function:compat-complete"
    invoked: list[tuple[str, dict]] = []
    done = threading.Event()

    class Result:
        error_type = None

    def invoke(name: str, event: dict) -> Result:
        invoked.append((name, event))
        done.set()
        return Result()

    with mock_aws():
        moto_compat.apply()
        sns = boto3.client("sns", region_name="us-east-1")
        topic = sns.create_topic(Name="compat-topic")["TopicArn"]
        sub = sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=function_arn)
        moto_compat.route_sns_to_lambda(function_arn, SnsLambdaDelivery("compat-complete", invoke))
        try:
            message_id = sns.publish(TopicArn=topic, Message='{"inferenceId": "x"}')["MessageId"]
            assert done.wait(30)
        finally:
            moto_compat.route_sns_to_lambda(function_arn, None)
    ((name, event),) = invoked
    (record,) = event["Records"]
    assert name == "compat-complete" and record["EventSource"] == "aws:sns"
    assert record["EventSubscriptionArn"] == sub["SubscriptionArn"]
    assert record["Sns"]["TopicArn"] == topic and record["Sns"]["MessageId"] == message_id
    assert record["Sns"]["Message"] == '{"inferenceId": "x"}'
    from aws_lambda_powertools.utilities.data_classes import SNSEvent

    assert next(SNSEvent(event).records).sns.message == '{"inferenceId": "x"}'


def test_express_executions_are_started_and_refused_as_aws_does():
    """Gap 13: every StartExecution of an Express state machine starts one (no dedupe by name),
    with an Express ARN; DescribeExecution, GetExecutionHistory, StopExecution refuse Express
    executions (InvalidArn) and ListExecutions an Express state machine; Standard unchanged."""
    from moto import mock_aws

    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        moto_compat.apply()
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        role = "arn:aws:iam::123456789012:role/x"
        express = sfn.create_state_machine(
            name="small", definition=definition, roleArn=role, type="EXPRESS"
        )["stateMachineArn"]
        standard = sfn.create_state_machine(name="big", definition=definition, roleArn=role)[
            "stateMachineArn"
        ]
        body = json.dumps({"job_id": "j1"})
        first = sfn.start_execution(stateMachineArn=express, name="j1", input=body)
        second = sfn.start_execution(stateMachineArn=express, name="j1", input=body)
        arns = [first["executionArn"], second["executionArn"]]
        assert arns[0] != arns[1]
        for arn in arns:
            assert arn.startswith("arn:aws:states:us-east-1:123456789012:express:small:j1:")

        def code(call):
            with pytest.raises(ClientError) as caught:
                call()
            return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]

        refused = ("InvalidArn", moto_compat.EXPRESS_ARN_REFUSED)
        assert code(lambda: sfn.describe_execution(executionArn=arns[0])) == refused
        assert code(lambda: sfn.get_execution_history(executionArn=arns[0])) == refused
        assert code(lambda: sfn.stop_execution(executionArn=arns[0])) == refused
        assert code(lambda: sfn.list_executions(stateMachineArn=express))[0] == (
            "StateMachineTypeNotSupported"
        )
        # the local cloud's own view: both ran
        for _ in range(400):
            runs = moto_compat.express_executions(express)
            if all(r["status"] != "RUNNING" for r in runs):
                break
            time.sleep(0.05)
        assert sorted(r["executionArn"] for r in runs) == sorted(arns)
        assert {r["status"] for r in runs} == {"SUCCEEDED"}
        # Standard: idempotent by name, described and listed as before
        one = sfn.start_execution(stateMachineArn=standard, name="j1", input=body)["executionArn"]
        assert ":execution:big:j1" in one
        assert sfn.describe_execution(executionArn=one)["name"] == "j1"
        assert [e["name"] for e in sfn.list_executions(stateMachineArn=standard)["executions"]] == [
            "j1"
        ]
