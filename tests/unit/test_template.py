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


def _policies(policies: list[Any]) -> list[Any]:
    """A function's policies, each branch of a conditional one (`!If`) included."""
    out: list[Any] = []
    for policy in policies:
        if isinstance(policy, dict) and "Fn::If" in policy:
            _, yes, no = policy["Fn::If"]
            out += _policies([p for p in (yes, no) if p != {"Ref": "AWS::NoValue"}])
        else:
            out.append(policy)
    return out


def _statements(policies: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in _policies(policies):
        if isinstance(policy, dict) and "Statement" in policy:
            out.extend(policy["Statement"])
    return out


def _all_iam_statements(resources: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for name, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            found += [(name, s) for s in _statements(props.get("Policies", []))]
        if res["Type"] == "AWS::IAM::Role":
            for pol in props.get("Policies", []):
                found += [(name, s) for s in pol["PolicyDocument"]["Statement"]]
    return found


def test_globals_pin_arm64_python313_and_tracing(template: dict[str, Any]) -> None:
    fn = template["Globals"]["Function"]
    assert fn["Runtime"] == "python3.13"
    # arm64 unless overridden (Architecture=x86_64 only for native local runs on x86)
    assert fn["Architectures"] == [{"Ref": "Architecture"}]
    assert template["Parameters"]["Architecture"]["Default"] == "arm64"
    assert fn["Tracing"] == "Active"
    assert fn["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "tandem"


def test_every_function_has_its_own_role_built_from_scoped_policies(
    resources: dict[str, Any],
) -> None:
    for name in FUNCTIONS:
        props = resources[name]["Properties"]
        assert "Role" not in props, f"{name} must get its own role from Policies"
        policies = _policies(props["Policies"])
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
        return {next(iter(p)) for p in _policies(resources[name]["Properties"]["Policies"])}

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
    for name in ("EndpointModel", "EndpointConfig", "Endpoint", "EndpointScalingPolicy"):
        assert resources[name]["Condition"] == "ShouldCreateEndpoint"
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
