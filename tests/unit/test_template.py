"""template.yaml: the properties the design promises, read from the template itself."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse
from tandem_common.contracts import FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]
# Actions that AWS does not scope to a resource; a "*" is only acceptable for these.
UNSCOPED_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml_parse((ROOT / "template.yaml").read_text())


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _branches(items: list[Any]) -> list[Any]:
    """A list's items with each `Fn::If` item replaced by its branches, nested ones included
    (`AWS::NoValue` dropped)."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict) and "Fn::If" in item:
            _, yes, no = item["Fn::If"]
            out += _branches([b for b in (yes, no) if b != {"Ref": "AWS::NoValue"}])
        else:
            out.append(item)
    return out


def _statements(policies: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in _branches(policies):
        if isinstance(policy, dict) and "Statement" in policy:
            out.extend(_branches(policy["Statement"]))
    return out


def _all_iam_statements(resources: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for name, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            found += [(name, s) for s in _statements(props.get("Policies", []))]
        if res["Type"] == "AWS::IAM::Role":
            for pol in props.get("Policies", []):
                found += [(name, s) for s in _branches(pol["PolicyDocument"]["Statement"])]
    return found


def test_globals_pin_arm64_python313_and_tracing(template: dict[str, Any]) -> None:
    fn = template["Globals"]["Function"]
    assert fn["Runtime"] == "python3.13"
    # arm64 unless overridden (Architecture=x86_64 only for native local runs on x86)
    assert fn["Architectures"] == [{"Ref": "Architecture"}]
    assert template["Parameters"]["Architecture"]["Default"] == "arm64"
    assert fn["Tracing"] == "Active"
    assert fn["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "tandem"


def test_every_function_has_its_own_role_built_from_scoped_branches(
    resources: dict[str, Any],
) -> None:
    for name in FUNCTIONS:
        props = resources[name]["Properties"]
        assert "Role" not in props, f"{name} must get its own role from Policies"
        policies = _branches(props["Policies"])
        assert policies, name
        for policy in policies:
            if isinstance(policy, dict) and "Statement" not in policy:
                # A SAM policy template: every argument is a Ref/GetAtt to this stack's resource.
                (args,) = policy.values()
                for key, value in args.items():
                    if key == "EventBusName" and value == "default":
                        continue  # the account's default bus: a single, named ARN
                    assert isinstance(value, dict), f"{name}: {policy} is not scoped with !Ref"
                    assert set(value) & {"Ref", "Fn::GetAtt"}, f"{name}: {policy}"


def test_function_policies_touch_only_what_the_function_uses(resources: dict[str, Any]) -> None:
    def templates(name: str) -> set[str]:
        return {next(iter(p)) for p in _branches(resources[name]["Properties"]["Policies"])}

    assert "StepFunctionsExecutionPolicy" not in templates("PreprocessFunction")
    assert "StepFunctionsExecutionPolicy" not in templates("DeliverFunction")
    assert templates("FailFunction") <= {
        "DynamoDBCrudPolicy",
        "EventBridgePutEventsPolicy",
        "SQSSendMessagePolicy",  # the webhook queue's first attempt
    }
    assert "S3CrudPolicy" not in templates("IngestFunction")  # ingest only reads inputs


def test_no_wildcard_resource_where_a_narrower_one_exists(resources: dict[str, Any]) -> None:
    for owner, stmt in _all_iam_statements(resources):
        res = stmt["Resource"]
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        if res == "*" or res == ["*"]:
            assert set(actions) <= UNSCOPED_ACTIONS, f"{owner}/{stmt.get('Sid')}: {actions} on *"
        for action in actions:
            assert not action.endswith(":*") and action != "*", f"{owner}: wildcard action {action}"


def test_bucket_is_encrypted_private_tls_only_and_emits_events(resources: dict[str, Any]) -> None:
    props = resources["DataBucket"]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"]
    prefixes = {r["Prefix"] for r in props["LifecycleConfiguration"]["Rules"]}
    assert {"inbox/", "jobs/"} <= prefixes
    (deny,) = resources["DataBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_tables_and_queues_are_encrypted_with_ttl_and_redrive(resources: dict[str, Any]) -> None:
    for table in ("JobsTable", "IdempotencyTable"):
        props = resources[table]["Properties"]
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["TimeToLiveSpecification"]["Enabled"] is True
    for queue in ("JobQueue", "JobDeadLetterQueue"):
        assert resources[queue]["Properties"]["SqsManagedSseEnabled"] is True
    redrive = resources["JobQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["JobDeadLetterQueue", "Arn"]}


def test_api_uses_iam_auth_by_default_and_only_docs_is_public(resources: dict[str, Any]) -> None:
    auth = resources["HttpApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == {"Fn::If": ["UseJwtAuth", "JwtAuthorizer", "AWS_IAM"]}
    public = [
        ev["Properties"]["Path"]
        for ev in resources["ApiFunction"]["Properties"]["Events"].values()
        if ev["Properties"].get("Auth", {}).get("Authorizer") == "NONE"
    ]
    assert public == ["/docs"]


def test_ingest_is_fed_by_inbox_rule_and_queue_with_partial_batch_responses(
    resources: dict[str, Any],
) -> None:
    events = resources["IngestFunction"]["Properties"]["Events"]
    pattern = events["InboxUpload"]["Properties"]["Pattern"]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "inbox/"}]
    assert events["JobQueue"]["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_endpoint_is_optional_and_autoscaled(resources: dict[str, Any]) -> None:
    for name in ("EndpointModel", "EndpointConfig", "Endpoint", "EndpointScalableTarget"):
        assert resources[name]["Condition"] == "ShouldCreateEndpoint"
    assert resources["EndpointScalingPolicy"]["Condition"] == "ShouldCreateRealtimeEndpoint"
    cfg = resources["EndpointScalingPolicy"]["Properties"][
        "TargetTrackingScalingPolicyConfiguration"
    ]
    assert cfg["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )


def test_state_machine_substitutions_match_the_definition(resources: dict[str, Any]) -> None:
    props = resources["PipelineStateMachine"]["Properties"]
    assert props["Type"] == "STANDARD"
    text = (ROOT / props["DefinitionUri"]).read_text()
    json.loads(text)
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    assert placeholders == set(props["DefinitionSubstitutions"])


def test_alarms_and_log_retention_exist(resources: dict[str, Any]) -> None:
    metrics = {
        r["Properties"]["MetricName"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert {
        "ExecutionsFailed",
        "ApproximateNumberOfMessagesVisible",
        "Invocation5XXErrors",
    } <= metrics
    for name in FUNCTIONS:
        group = resources[name.replace("Function", "LogGroup")]["Properties"]
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{name}}}"}


# ---------------------------------------------------------------------- the vector index
def _actions(stmt: dict[str, Any]) -> list[str]:
    return stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]


def test_vector_index_takes_the_models_dimension_cosine_and_text_unfiltered(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    index = resources["VectorIndex"]
    assert index["Type"] == "AWS::S3Vectors::Index" and index["Condition"] == "IndexVectors"
    props = index["Properties"]
    assert props["VectorBucketArn"] == {"Fn::GetAtt": ["VectorBucket", "VectorBucketArn"]}
    assert (props["DataType"], props["DistanceMetric"]) == ("float32", "cosine")
    assert props["MetadataConfiguration"]["NonFilterableMetadataKeys"] == ["text"]
    # one parameter sizes the index and the api's served model: they cannot disagree
    assert props["Dimension"] == {"Ref": "EmbeddingDimensions"}
    api_env = resources["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert api_env["MODEL_DIMENSIONS"] == {"Ref": "EmbeddingDimensions"}
    assert template["Parameters"]["EmbeddingDimensions"]["Default"] == 384
    assert template["Parameters"]["VectorIndexing"]["Default"] == "true"
    for name in ("VectorBucket", "DocumentsTable"):
        assert resources[name]["Condition"] == "IndexVectors"
    assert resources["DocumentsTable"]["Properties"]["SSESpecification"]["SSEEnabled"] is True


def test_only_the_writers_and_the_api_touch_the_vector_index_on_its_arn(
    resources: dict[str, Any],
) -> None:
    granted: dict[str, set[str]] = {}
    for owner, stmt in _all_iam_statements(resources):
        vector_actions = {a for a in _actions(stmt) if a.startswith("s3vectors:")}
        if vector_actions:
            assert stmt["Resource"] == {"Fn::GetAtt": ["VectorIndex", "IndexArn"]}, owner
            granted.setdefault(owner, set()).update(vector_actions)
    write = {"s3vectors:GetIndex", "s3vectors:PutVectors", "s3vectors:DeleteVectors"}
    assert granted == {
        "CollectFunction": write,
        "DeliverFunction": write,  # it collects a batch whose child's collect step failed
        "ApiFunction": {
            "s3vectors:GetIndex",
            "s3vectors:QueryVectors",
            "s3vectors:GetVectors",  # QueryVectors with a filter or returnMetadata needs it
            "s3vectors:DeleteVectors",
        },
    }
    for name in granted:
        env = resources[name]["Properties"]["Environment"]["Variables"]
        assert env["VECTOR_INDEX_ARN"] == {
            "Fn::If": ["IndexVectors", {"Fn::GetAtt": ["VectorIndex", "IndexArn"]}, ""]
        }
        assert env["DOCUMENTS_TABLE"] == {"Fn::If": ["IndexVectors", {"Ref": "DocumentsTable"}, ""]}


def test_vector_indexing_false_creates_no_index_and_gives_the_functions_none() -> None:
    from tandem.local.template import LocalTemplate

    on = LocalTemplate(ROOT / "template.yaml")
    off = LocalTemplate(ROOT / "template.yaml", overrides={"VectorIndexing": "false"})
    assert on.of_type("AWS::S3Vectors::Index") == ["VectorIndex"]
    assert on.functions()["CollectFunction"].environment["VECTOR_INDEX_ARN"] == (
        "arn:aws:s3vectors:us-east-1:123456789012:bucket/tandem-vectorbucket/index/tandem-vectorindex"
    )
    for typ in ("AWS::S3Vectors::VectorBucket", "AWS::S3Vectors::Index"):
        assert off.of_type(typ) == []
    for name in ("ApiFunction", "CollectFunction", "DeliverFunction"):
        env = off.functions()[name].environment
        assert env["VECTOR_INDEX_ARN"] == "" and env["DOCUMENTS_TABLE"] == ""


# ---------------------------------------------------------------------- EndpointMode=async
ASYNC_ONLY = (
    "InferenceTable",
    "AsyncSuccessTopic",
    "AsyncErrorTopic",
    "SubmitFunction",
    "CompleteFunction",
    "SubmitLogGroup",
    "CompleteLogGroup",
)


def test_endpoint_mode_switch_defaults_to_realtime(template: dict[str, Any]) -> None:
    mode = template["Parameters"]["EndpointMode"]
    assert mode["Default"] == "realtime" and mode["AllowedValues"] == ["realtime", "async"]
    conditions = template["Conditions"]
    assert conditions["IsAsync"] == {"Fn::Equals": [{"Ref": "EndpointMode"}, "async"]}
    assert conditions["ShouldCreateAsyncEndpoint"] == {
        "Fn::And": [{"Condition": "ShouldCreateEndpoint"}, {"Condition": "IsAsync"}]
    }


def test_async_mode_resources_exist_only_in_async_mode(resources: dict[str, Any]) -> None:
    for name in ASYNC_ONLY:
        assert resources[name]["Condition"] == "IsAsync", name
    table = resources["InferenceTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "inference_id", "KeyType": "HASH"}]
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    for name in ("AsyncBacklogScalingPolicy", "AsyncScaleFromZeroPolicy"):
        assert resources[name]["Condition"] == "ShouldCreateAsyncEndpoint"
    assert resources["AsyncHasBacklogWithoutCapacityAlarm"]["Condition"] == (
        "ShouldCreateAsyncEndpoint"
    )


def test_the_async_endpoint_config_writes_under_the_data_bucket_and_notifies_both_topics(
    resources: dict[str, Any],
) -> None:
    config = resources["EndpointConfig"]["Properties"]["AsyncInferenceConfig"]["Fn::If"]
    assert config[0] == "IsAsync" and config[2] == {"Ref": "AWS::NoValue"}
    async_config = config[1]
    output = async_config["OutputConfig"]
    assert output["S3OutputPath"] == {"Fn::Sub": "s3://${DataBucket}/async/output/"}
    assert output["S3FailurePath"] == {"Fn::Sub": "s3://${DataBucket}/async/failures/"}
    assert output["NotificationConfig"] == {
        "SuccessTopic": {"Ref": "AsyncSuccessTopic"},
        "ErrorTopic": {"Ref": "AsyncErrorTopic"},
    }
    assert async_config["ClientConfig"]["MaxConcurrentInvocationsPerInstance"] == {
        "Ref": "AsyncMaxConcurrentInvocationsPerInstance"
    }
    # the container's request deadline follows the async invocation timeout
    env = resources["EndpointModel"]["Properties"]["PrimaryContainer"]["Environment"]
    assert env["TANDEM_REQUEST_DEADLINE_S"] == {
        "Fn::If": ["IsAsync", {"Ref": "AsyncInvocationTimeoutSeconds"}, "55"]
    }


def test_async_scales_to_zero_and_back_from_zero(resources: dict[str, Any]) -> None:
    target = resources["EndpointScalableTarget"]["Properties"]
    assert target["MinCapacity"] == {"Fn::If": ["IsAsync", 0, {"Ref": "EndpointMinInstances"}]}
    tracking = resources["AsyncBacklogScalingPolicy"]["Properties"]
    metric = tracking["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
    assert metric["MetricName"] == "ApproximateBacklogSizePerInstance"
    assert metric["Namespace"] == "AWS/SageMaker"
    # target tracking never leaves 0 instances (its metric has no value there): a step policy on
    # HasBacklogWithoutCapacity adds the first instance
    step = resources["AsyncScaleFromZeroPolicy"]["Properties"]
    assert step["PolicyType"] == "StepScaling"
    config = step["StepScalingPolicyConfiguration"]
    assert config["AdjustmentType"] == "ChangeInCapacity"
    assert config["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    alarm = resources["AsyncHasBacklogWithoutCapacityAlarm"]["Properties"]
    assert alarm["MetricName"] == "HasBacklogWithoutCapacity"
    assert alarm["AlarmActions"] == [{"Ref": "AsyncScaleFromZeroPolicy"}]
    assert (
        alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["Threshold"] == 1
    )


def test_the_async_functions_are_fed_and_scoped(resources: dict[str, Any]) -> None:
    complete = resources["CompleteFunction"]["Properties"]
    events = complete["Events"]
    assert {e["Properties"].get("Topic", {}).get("Ref") for e in events.values()} >= {
        "AsyncSuccessTopic",
        "AsyncErrorTopic",
    }
    assert events["Sweep"]["Properties"]["Schedule"] == "rate(1 minute)"
    assert json.loads(events["Sweep"]["Properties"]["Input"]) == {"sweep": True}
    resume = next(s for s in _statements(complete["Policies"]) if s.get("Sid") == "ResumeTheTask")
    assert resume["Resource"] == [  # this stack's tasks only (its Map Runs' children too)
        {"Ref": "PipelineStateMachine"},
        {"Fn::Sub": "${PipelineStateMachine}/*"},
    ]
    submit = resources["SubmitFunction"]["Properties"]
    queue = next(s for s in _statements(submit["Policies"]) if s.get("Sid") == "QueueTheBatch")
    assert queue["Action"] == "sagemaker:InvokeEndpointAsync"
    # the state machine may invoke the submit function (async only)
    machine = resources["PipelineStateMachine"]["Properties"]["Policies"]
    conditional = [p["Fn::If"] for p in machine if isinstance(p, dict) and "Fn::If" in p]
    assert conditional == [
        [
            "IsAsync",
            {"LambdaInvokePolicy": {"FunctionName": {"Ref": "SubmitFunction"}}},
            {"Ref": "AWS::NoValue"},
        ]
    ]


@pytest.mark.parametrize("mode", ["realtime", "async"])
def test_the_local_cloud_reads_each_mode_from_the_template(mode: str) -> None:
    from tandem_common.contracts import ASYNC_FUNCTIONS

    from tandem.local.template import LocalTemplate

    tpl = LocalTemplate(ROOT / "template.yaml", overrides={"EndpointMode": mode})
    expected = set(FUNCTIONS) if mode == "async" else set(FUNCTIONS) - set(ASYNC_FUNCTIONS)
    assert set(tpl.functions()) == expected
    api = tpl.functions()["ApiFunction"].environment
    # an async endpoint answers only InvokeEndpointAsync: /v1/embeddings needs QueryEndpointName
    assert api["ENDPOINT_NAME"] == ("" if mode == "async" else "tandem-embeddings")
    if mode == "async":
        submit = tpl.functions()["SubmitFunction"].environment
        assert submit["ENDPOINT_NAME"] == "tandem-embeddings"
        assert submit["INFERENCE_TABLE"] == "tandem-InferenceTable"
        events = {e.type: e.properties for e in tpl.functions()["CompleteFunction"].events}
        assert events["SNS"]["Topic"].startswith("arn:aws:sns:us-east-1:123456789012:tandem-Async")
    with_query = LocalTemplate(
        ROOT / "template.yaml", overrides={"EndpointMode": mode, "QueryEndpointName": "rt"}
    )
    assert with_query.functions()["ApiFunction"].environment["ENDPOINT_NAME"] == "rt"
