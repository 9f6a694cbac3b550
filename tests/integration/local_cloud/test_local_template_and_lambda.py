"""Template -> moto resources; the local Lambda service and HTTP API with fixture handlers (no endpoint)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from tandem_common.contracts import ASYNC_FUNCTIONS, FUNCTIONS

from tandem.local.http_api import LocalHttpApi, routes_from_functions
from tandem.local.lambda_service import LambdaService
from tandem.local.template import EventSource, FunctionSpec, LocalTemplate, create_resources

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
FNS = Path(__file__).resolve().parent / "fixtures" / "fns"


def _created(template_path, stack="tplcheck"):
    from moto import mock_aws

    # its own stack name: a LocalCloud of this session may share moto's in-memory state
    tpl = LocalTemplate(template_path, stack_name=stack)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        created = create_resources(tpl, session)
        tables = [
            t
            for t in session.client("dynamodb").list_tables()["TableNames"]
            if t.startswith(stack + "-")
        ]
        ttl = {
            t: session.client("dynamodb").describe_time_to_live(TableName=t)[
                "TimeToLiveDescription"
            ]
            for t in tables
        }
        buckets = [
            b["Name"]
            for b in session.client("s3").list_buckets()["Buckets"]
            if b["Name"].startswith(stack + "-")
        ]
        sqs = session.client("sqs")
        attrs = {
            u.rsplit("/", 1)[-1]: sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["All"])[
                "Attributes"
            ]
            for u in sqs.list_queues(QueueNamePrefix=stack + "-")["QueueUrls"]
        }
        machines = [
            m
            for m in session.client("stepfunctions").list_state_machines()["stateMachines"]
            if m["name"].startswith(stack + "-")
        ]
    return tpl, created, tables, ttl, buckets, attrs, machines


def test_resources_come_from_the_template():
    tpl, created, tables, ttl, buckets, attrs, machines = _created(ROOT / "template.yaml")
    assert set(tables) == {
        "tplcheck-JobsTable",
        "tplcheck-IdempotencyTable",
        "tplcheck-DocumentsTable",
    }
    assert ttl["tplcheck-JobsTable"]["AttributeName"] == "expires_at"
    assert buckets == ["tplcheck-databucket"] and created["DataBucket"]["eventbridge"]
    redrive = json.loads(attrs["tplcheck-JobQueue"]["RedrivePolicy"])
    assert (
        redrive["deadLetterTargetArn"]
        == "arn:aws:sqs:us-east-1:123456789012:tplcheck-JobDeadLetterQueue"
    )
    assert int(redrive["maxReceiveCount"]) == 3
    assert sorted(m["name"] for m in machines) == ["tplcheck-express", "tplcheck-pipeline"]
    definition = tpl.state_machine_definition("PipelineStateMachine")
    assert (
        "arn:aws:lambda:us-east-1:123456789012:function:tplcheck-PreprocessFunction" in definition
    )
    assert '"EndpointName": "tandem-embeddings"' in definition and "${" not in definition
    fns = tpl.functions()
    assert set(fns) == set(FUNCTIONS) - set(ASYNC_FUNCTIONS)  # EndpointMode=realtime
    assert fns["PreprocessFunction"].timeout == 900 and fns["PreprocessFunction"].memory == 1769
    env = fns["IngestFunction"].environment
    assert (
        env["DATA_BUCKET"] == "tplcheck-databucket"
        and env["IDEMPOTENCY_TABLE"] == "tplcheck-IdempotencyTable"
    )
    assert env["STATE_MACHINE_ARN"].endswith(":stateMachine:tplcheck-pipeline")
    assert fns["ApiFunction"].layer_dirs == [ROOT / "layers" / "common"]
    skipped = tpl.skipped()
    assert "Endpoint" in skipped and "HttpApi" in skipped and "FailedExecutionsAlarm" in skipped


@pytest.mark.parametrize("indexing", ["true", "false"])
def test_the_vector_index_comes_from_the_template(indexing):
    from moto import mock_aws

    from tandem.local import moto_compat

    moto_compat.add_vector_query()  # gap 9: the index keeps its metadata configuration
    # a stack name per case: a LocalCloud of this session may share moto's in-memory state (a
    # nested mock_aws neither resets it on entry nor on exit), so names must not repeat
    stack = f"tplvectors{indexing}"
    tpl = LocalTemplate(ROOT / "template.yaml", stack, {"VectorIndexing": indexing})
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        created = create_resources(tpl, session)
        s3vectors = session.client("s3vectors")
        buckets = [
            b["vectorBucketName"]
            for b in s3vectors.list_vector_buckets()["vectorBuckets"]
            if b["vectorBucketName"].startswith(stack + "-")
        ]
        index_arn = tpl.functions()["CollectFunction"].environment["VECTOR_INDEX_ARN"]
        if indexing == "false":
            assert buckets == [] and index_arn == "" and "VectorIndex" not in created
            return
        assert buckets == ["tplvectorstrue-vectorbucket"]
        assert (
            created["VectorIndex"]["arn"]
            == index_arn
            == (
                "arn:aws:s3vectors:us-east-1:123456789012:bucket/tplvectorstrue-vectorbucket"
                "/index/tplvectorstrue-vectorindex"
            )
        )
        index = s3vectors.get_index(indexArn=index_arn)["index"]
    assert (index["dimension"], index["distanceMetric"], index["dataType"]) == (
        384,
        "cosine",
        "float32",
    )
    assert index["metadataConfiguration"] == {"nonFilterableMetadataKeys": ["text"]}
    api_env = tpl.functions()["ApiFunction"].environment
    assert api_env["MODEL_DIMENSIONS"] == "384" and api_env["VECTOR_INDEX_ARN"] == index_arn


def test_a_table_added_to_the_template_exists_locally(tmp_path):
    text = (ROOT / "template.yaml").read_text()
    extra = """
  AuditTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - AttributeName: pk
          AttributeType: S
      KeySchema:
        - AttributeName: pk
          KeyType: HASH
      TimeToLiveSpecification:
        AttributeName: ttl
        Enabled: true
"""
    text = text.replace("\nResources:\n", "\nResources:\n" + extra, 1)
    (tmp_path / "template.yaml").write_text(text)
    for d in ("statemachine", "functions", "layers"):
        (tmp_path / d).symlink_to(ROOT / d)
    _, created, tables, ttl, *_ = _created(tmp_path / "template.yaml", stack="tpladd")
    assert "tpladd-AuditTable" in tables and ttl["tpladd-AuditTable"]["AttributeName"] == "ttl"
    assert created["AuditTable"]["type"] == "AWS::DynamoDB::Table"


def _spec(name, handler, timeout=10, events=()):
    return FunctionSpec(
        logical_id=name,
        name=f"tandem-{name}",
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:tandem-{name}",
        code_dir=FNS,
        handler=handler,
        timeout=timeout,
        memory=256,
        environment={"FIXTURE_FLAG": "on"},
        layer_dirs=[],
        events=list(events),
    )


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    import os

    fns = {
        "Echo": _spec("Echo", "handler.echo"),
        "Boom": _spec("Boom", "handler.boom"),
        "Sleepy": _spec("Sleepy", "handler.sleepy", timeout=1),
        "Http": _spec(
            "Http",
            "handler.http",
            events=[
                EventSource("Api", "HttpApi", {"Path": "/{proxy+}", "Method": "ANY"}),
                EventSource("Item", "HttpApi", {"Path": "/items/{id}", "Method": "GET"}),
            ],
        ),
    }

    def env_for(spec):
        return {
            "PATH": os.environ["PATH"],
            **spec.environment,
            "PYTHONPATH": f"{FNS}:{ROOT}",
            "TANDEM_WORKER_ROOT": str(ROOT),
        }

    svc = LambdaService(fns, env_for, tmp_path_factory.mktemp("logs"), max_workers=2).start()
    api = LocalHttpApi(svc, routes_from_functions(fns)).start()
    yield svc, api
    api.close()
    svc.close()


def _lambda(svc):
    return boto3.client(
        "lambda",
        endpoint_url=svc.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def test_boto3_invoke_by_name_logical_id_and_arn(service):
    svc, _ = service
    client = _lambda(svc)
    for name in (
        "tandem-Echo",
        "Echo",
        "arn:aws:lambda:us-east-1:123456789012:function:tandem-Echo",
    ):
        r = client.invoke(FunctionName=name, Payload=json.dumps({"x": 1}))
        out = json.loads(r["Payload"].read())
        assert r["StatusCode"] == 200 and "FunctionError" not in r
        assert (
            out["event"] == {"x": 1}
            and out["function_name"] == "tandem-Echo"
            and out["memory"] == 256
        )
        assert out["arn"].endswith(":function:tandem-Echo") and 0 < out["remaining_ms"] <= 10_000
        assert out["env_flag"] == "on"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="nope", Payload=b"{}")
    assert (
        client.invoke(FunctionName="Echo", InvocationType="Event", Payload=b"{}")["StatusCode"]
        == 202
    )


def test_errors_are_lambda_shaped(service):
    svc, _ = service
    r = _lambda(svc).invoke(FunctionName="Boom", Payload=b"{}")
    assert r["FunctionError"] == "Unhandled"
    body = json.loads(r["Payload"].read())
    assert (
        body["errorType"] == "FixtureError"
        and body["errorMessage"] == "the fixture failed on purpose"
    )
    assert any("boom" in line for line in body["stackTrace"])


def test_timeout_kills_and_respawns_the_worker(service):
    svc, _ = service
    client = _lambda(svc)
    t0 = time.monotonic()
    r = client.invoke(FunctionName="Sleepy", Payload=json.dumps({"sleep": 30}))
    assert time.monotonic() - t0 < 10
    body = json.loads(r["Payload"].read())
    assert r["FunctionError"] == "Unhandled" and body["errorType"] == "Sandbox.Timedout"
    r = client.invoke(FunctionName="Sleepy", Payload=json.dumps({"sleep": 0}))
    assert json.loads(r["Payload"].read())["slept"] is True


def test_http_api_payload_v2(service):
    _, api = service
    req = urllib.request.Request(
        api.url + "/items/42?a=1&a=2&b=x", method="GET", headers={"X-Custom": "Yes"}
    )
    with urllib.request.urlopen(req) as r:
        assert (
            r.status == 201
            and r.headers["x-route"] == "GET /items/{id}"
            and r.headers["Set-Cookie"] == "a=1"
        )
        ev = json.loads(r.read())
    assert (
        ev["version"] == "2.0"
        and ev["rawPath"] == "/items/42"
        and ev["rawQueryString"] == "a=1&a=2&b=x"
    )
    assert ev["queryStringParameters"] == {"a": "1,2", "b": "x"} and ev["pathParameters"] == {
        "id": "42"
    }
    assert ev["headers"]["x-custom"] == "Yes" and ev["requestContext"]["http"]["method"] == "GET"
    req = urllib.request.Request(
        api.url + "/v1/jobs",
        data=b"\xff\x00\x01",
        method="POST",
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(req) as r:
        ev = json.loads(r.read())
    assert ev["routeKey"] == "ANY /{proxy+}" and ev["pathParameters"] == {"proxy": "v1/jobs"}
    assert ev["isBase64Encoded"] is True and ev["body"] == "/wAB"
