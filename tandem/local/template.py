"""Read template.yaml and turn it into local resources: the single source of what exists locally.

Intrinsics evaluated: Ref, Fn::GetAtt, Fn::Sub (both forms), Fn::If, Fn::Join, Fn::Select,
Fn::Equals/Not/And/Or (conditions), pseudo parameters.  Physical names are deterministic:
``<stack>-<LogicalId>`` (lower-cased for buckets), the state machine keeps its ``Name``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tandem.local import moto_compat

log = logging.getLogger(__name__)

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PARTITION = "aws"

# The S3 Vectors types and the property that names them (CloudFormation generates a name without it).
VECTOR_NAME_PROPERTY = {
    "AWS::S3Vectors::VectorBucket": "VectorBucketName",
    "AWS::S3Vectors::Index": "IndexName",
}
# Resource types with no local counterpart (listed by LocalTemplate.skipped).
SKIPPED_TYPES = {
    "AWS::IAM::Role": "IAM is not enforced locally",
    "AWS::IAM::Policy": "IAM is not enforced locally",
    "AWS::Logs::LogGroup": "logs go to the session log dir",
    "AWS::CloudWatch::Alarm": "no metrics locally",
    "AWS::S3::BucketPolicy": "policies are not enforced locally",
    "AWS::SageMaker::Model": "the local endpoint server stands in",
    "AWS::SageMaker::EndpointConfig": "the local endpoint server stands in",
    "AWS::SageMaker::Endpoint": "the local endpoint server stands in",
    "AWS::ApplicationAutoScaling::ScalableTarget": "no autoscaling locally",
    "AWS::ApplicationAutoScaling::ScalingPolicy": "no autoscaling locally",
    "AWS::Serverless::LayerVersion": "its folder goes on the workers' PYTHONPATH",
    "AWS::Serverless::HttpApi": "served by the local HTTP API",
}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template (short-form tags become Fn:: dicts)."""
    from samcli.yamlhelper import yaml_parse

    return _plain(yaml_parse(Path(path).read_text()))


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


@dataclass
class EventSource:
    name: str
    type: str
    properties: dict[str, Any]


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    layer_dirs: list[Path]
    events: list[EventSource] = field(default_factory=list)


class TemplateError(Exception):
    pass


class LocalTemplate:
    def __init__(
        self,
        path: str | Path,
        stack_name: str = "tandem",
        overrides: dict[str, str] | None = None,
        region: str = REGION,
        account_id: str = ACCOUNT_ID,
    ) -> None:
        self.path = Path(path).resolve()
        self.root = self.path.parent
        self.doc = load_yaml(self.path)
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.resources: dict[str, dict[str, Any]] = self.doc.get("Resources", {})
        self.parameters = self._eval_parameters(overrides or {})
        self._conditions: dict[str, bool] = {}
        self.conditions = {name: self._condition(name) for name in self.doc.get("Conditions", {})}

    # ------------------------------------------------------------------ parameters/conditions
    def _eval_parameters(self, overrides: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, spec in self.doc.get("Parameters", {}).items():
            value = overrides.get(name, spec.get("Default"))
            if value is None:
                raise TemplateError(f"parameter {name} has no default and no override")
            if spec.get("Type") == "CommaDelimitedList":
                value = (
                    []
                    if value in ("", [])
                    else (
                        value
                        if isinstance(value, list)
                        else [s.strip() for s in str(value).split(",")]
                    )
                )
            else:
                value = str(value)
            out[name] = value
        unknown = set(overrides) - set(out)
        if unknown:
            raise TemplateError(f"unknown parameter override(s): {sorted(unknown)}")
        return out

    def _condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self._eval_cond(self.doc["Conditions"][name]))
        return self._conditions[name]

    def _eval_cond(self, expr: Any) -> Any:
        if isinstance(expr, dict) and len(expr) == 1:
            ((k, v),) = expr.items()
            if k == "Fn::Equals":
                a, b = (self.resolve(x) for x in v)
                return str(a) == str(b)
            if k == "Fn::Not":
                return not self._eval_cond(v[0])
            if k == "Fn::And":
                return all(self._eval_cond(x) for x in v)
            if k == "Fn::Or":
                return any(self._eval_cond(x) for x in v)
            if k == "Condition":
                return self._condition(v)
        return self.resolve(expr)

    def is_active(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return True if cond is None else self._condition(cond)

    # ------------------------------------------------------------------ names
    def physical_name(self, logical_id: str) -> str:
        res = self.resources[logical_id]
        typ = res["Type"]
        props = res.get("Properties", {})
        if typ == "AWS::S3::Bucket":
            return (props.get("BucketName") and self.resolve(props["BucketName"])) or (
                f"{self.stack_name}-{logical_id}".lower()
            )
        if typ == "AWS::DynamoDB::Table" and "TableName" in props:
            return self.resolve(props["TableName"])
        if typ == "AWS::SQS::Queue" and "QueueName" in props:
            return self.resolve(props["QueueName"])
        if typ == "AWS::Serverless::StateMachine" and "Name" in props:
            return self.resolve(props["Name"])
        if typ == "AWS::Serverless::Function" and "FunctionName" in props:
            return self.resolve(props["FunctionName"])
        if typ in VECTOR_NAME_PROPERTY:  # lower-case letters, digits and hyphens only
            name = props.get(VECTOR_NAME_PROPERTY[typ])
            return self.resolve(name) if name else f"{self.stack_name}-{logical_id}".lower()
        if typ == "AWS::SNS::Topic" and "TopicName" in props:
            return self.resolve(props["TopicName"])
        return f"{self.stack_name}-{logical_id}"

    def arn(self, logical_id: str) -> str:
        typ = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        r, a = self.region, self.account_id
        if typ == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if typ == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{r}:{a}:table/{name}"
        if typ == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{r}:{a}:{name}"
        if typ == "AWS::Serverless::StateMachine":
            return f"arn:aws:states:{r}:{a}:stateMachine:{name}"
        if typ == "AWS::Serverless::Function":
            return f"arn:aws:lambda:{r}:{a}:function:{name}"
        if typ == "AWS::Serverless::LayerVersion":
            return f"arn:aws:lambda:{r}:{a}:layer:{name}:1"
        if typ == "AWS::SNS::Topic":
            return f"arn:aws:sns:{r}:{a}:{name}"
        if typ == "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{r}:{a}:log-group:{name}:*"
        if typ == "AWS::S3Vectors::VectorBucket":
            return f"arn:aws:s3vectors:{r}:{a}:bucket/{name}"
        if typ == "AWS::S3Vectors::Index":
            return f"{self.vector_bucket_arn(logical_id)}/index/{name}"
        return f"arn:aws:local:{r}:{a}:{logical_id}/{name}"

    def vector_bucket_arn(self, index_id: str) -> str:
        """The ARN of the vector bucket an AWS::S3Vectors::Index names (by ARN or by name)."""
        props = self.resources[index_id].get("Properties", {})
        if "VectorBucketArn" in props:
            return str(self.resolve(props["VectorBucketArn"]))
        name = self.resolve(props["VectorBucketName"])
        return f"arn:aws:s3vectors:{self.region}:{self.account_id}:bucket/{name}"

    def queue_url(self, logical_id: str) -> str:
        return f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{self.physical_name(logical_id)}"

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name not in self.resources:
            raise TemplateError(f"Ref to unknown name {name}")
        typ = self.resources[name]["Type"]
        if typ == "AWS::SQS::Queue":
            return self.queue_url(name)
        if typ in (
            "AWS::Serverless::StateMachine",
            "AWS::Serverless::LayerVersion",
            *VECTOR_NAME_PROPERTY,
            "AWS::SNS::Topic",
        ):
            return self.arn(
                name
            )  # S3 Vectors' and SNS topics' Ref is their ARN, as in CloudFormation
        if typ == "AWS::Serverless::HttpApi":
            return "local"
        return self.physical_name(name)

    def get_att(self, logical_id: str, attr: str) -> Any:
        if logical_id not in self.resources:
            raise TemplateError(f"GetAtt on unknown resource {logical_id}")
        if attr in ("Arn", "VectorBucketArn", "IndexArn"):
            return self.arn(logical_id)
        if attr in ("Name", "QueueName", "EndpointName", "TableName", "BucketName", "TopicName"):
            return self.physical_name(logical_id)
        if attr == "QueueUrl":
            return self.queue_url(logical_id)
        raise TemplateError(f"GetAtt {logical_id}.{attr} is not supported locally")

    # ------------------------------------------------------------------ intrinsics
    def resolve(self, v: Any) -> Any:
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            ((k, arg),) = v.items()
            if k == "Ref":
                return self.ref(arg)
            if k == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(parts[0], parts[1])
            if k == "Fn::Sub":
                return self._sub(arg)
            if k == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self._condition(name) else no)
            if k == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.resolve(items))
            if k == "Fn::Select":
                idx, items = arg
                return self.resolve(items)[int(self.resolve(idx))]
            if k in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
                return self._eval_cond(v)
        return {k: self.resolve(x) for k, x in v.items()}

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, local_vars = arg[0], {k: self.resolve(x) for k, x in arg[1].items()}
        else:
            text, local_vars = arg, {}

        def repl(m: re.Match[str]) -> str:
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in local_vars:
                return str(local_vars[key])
            if "." in key:
                lid, attr = key.split(".", 1)
                return str(self.get_att(lid, attr))
            return str(self.ref(key))

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    # ------------------------------------------------------------------ views
    def of_type(self, typ: str) -> list[str]:
        return [
            lid for lid, r in self.resources.items() if r["Type"] == typ and self.is_active(lid)
        ]

    def props(self, logical_id: str) -> dict[str, Any]:
        return self.resolve(self.resources[logical_id].get("Properties", {}))

    def skipped(self) -> dict[str, str]:
        out = {}
        for lid, r in self.resources.items():
            if not self.is_active(lid):
                out[lid] = f"{r['Type']}: condition {r.get('Condition')} is false"
            elif r["Type"] in SKIPPED_TYPES:
                out[lid] = f"{r['Type']}: {SKIPPED_TYPES[r['Type']]}"
        return out

    def functions(self) -> dict[str, FunctionSpec]:
        glob = self.doc.get("Globals", {}).get("Function", {})
        out: dict[str, FunctionSpec] = {}
        for lid in self.of_type("AWS::Serverless::Function"):
            raw = self.resources[lid].get("Properties", {})
            merged = {**glob, **raw}
            env = dict(glob.get("Environment", {}).get("Variables", {}))
            env.update(raw.get("Environment", {}).get("Variables", {}))
            env_resolved = {k: _env_str(self.resolve(val)) for k, val in env.items()}
            layer_dirs = []
            for layer in merged.get("Layers", []) or []:
                if isinstance(layer, dict) and "Ref" in layer and layer["Ref"] in self.resources:
                    lprops = self.resources[layer["Ref"]].get("Properties", {})
                    layer_dirs.append((self.root / lprops["ContentUri"]).resolve())
            events = [
                EventSource(name, ev["Type"], self.resolve(ev.get("Properties", {})))
                for name, ev in (raw.get("Events") or {}).items()
            ]
            name = self.physical_name(lid)
            out[lid] = FunctionSpec(
                logical_id=lid,
                name=name,
                arn=self.arn(lid),
                code_dir=(self.root / self.resolve(merged["CodeUri"])).resolve(),
                handler=merged["Handler"],
                timeout=int(self.resolve(merged.get("Timeout", 3))),
                memory=int(self.resolve(merged.get("MemorySize", 128))),
                environment=env_resolved,
                layer_dirs=layer_dirs,
                events=events,
            )
        return out

    def state_machine_definition(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties", {})
        if "DefinitionUri" in props:
            text = (self.root / self.resolve(props["DefinitionUri"])).read_text()
        else:
            text = json.dumps(self.resolve(props["Definition"]))
        subs = {
            k: str(self.resolve(v)) for k, v in (props.get("DefinitionSubstitutions") or {}).items()
        }
        for k, val in subs.items():
            text = text.replace("${" + k + "}", val)
        json.loads(text)  # must still be valid JSON
        return text

    def outputs(self) -> dict[str, Any]:
        out = {}
        for name, o in self.doc.get("Outputs", {}).items():
            if "Condition" in o and not self._condition(o["Condition"]):
                continue
            try:
                out[name] = self.resolve(o["Value"])
            except TemplateError as e:  # e.g. GetAtt on a skipped resource
                log.debug("output %s not resolvable locally: %s", name, e)
        return out


def _env_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    return str(v)


# ---------------------------------------------------------------------- resource creation
def create_resources(
    tpl: LocalTemplate, session: Any, local_queue_visibility: int | None = 2
) -> dict[str, dict[str, Any]]:
    """Create every S3 bucket, DynamoDB table, SQS queue, SNS topic (with the functions' `SNS`
    event subscriptions), S3 Vectors bucket and index and state machine of the template in moto.

    `session` is a boto3 Session (clients run against the in-process mock). Returns
    {logical_id: {"type", "name", ...}} for what was created; `delete_resources` removes it.
    """
    created: dict[str, dict[str, Any]] = {}
    s3 = session.client("s3", region_name=tpl.region)
    ddb = session.client("dynamodb", region_name=tpl.region)
    sqs = session.client("sqs", region_name=tpl.region)
    sfn = session.client("stepfunctions", region_name=tpl.region)
    iam = session.client("iam", region_name=tpl.region)

    for lid in tpl.of_type("AWS::S3::Bucket"):
        p = tpl.props(lid)
        name = tpl.physical_name(lid)
        s3.create_bucket(Bucket=name)
        if p.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        eb = bool(
            p.get("NotificationConfiguration", {})
            .get("EventBridgeConfiguration", {})
            .get("EventBridgeEnabled")
        )
        if eb:
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
        created[lid] = {"type": "AWS::S3::Bucket", "name": name, "eventbridge": eb}

    for lid in tpl.of_type("AWS::DynamoDB::Table"):
        p = tpl.props(lid)
        name = tpl.physical_name(lid)
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": p["AttributeDefinitions"],
            "KeySchema": p["KeySchema"],
        }
        if p.get("BillingMode", "PROVISIONED") == "PAY_PER_REQUEST":
            kwargs["BillingMode"] = "PAY_PER_REQUEST"
        else:
            kwargs["ProvisionedThroughput"] = {
                k: int(v)
                for k, v in p.get(
                    "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
                ).items()
            }
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in p:
                kwargs[key] = p[key]
        ddb.create_table(**kwargs)
        ttl = p.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        created[lid] = {
            "type": "AWS::DynamoDB::Table",
            "name": name,
            "ttl": (ttl or {}).get("AttributeName"),
        }

    # queues: DLQs (no RedrivePolicy) first so redrive targets exist
    queues = sorted(
        tpl.of_type("AWS::SQS::Queue"),
        key=lambda q: "RedrivePolicy" in tpl.resources[q].get("Properties", {}),
    )
    for lid in queues:
        p = tpl.props(lid)
        name = tpl.physical_name(lid)
        attrs: dict[str, str] = {}
        if "VisibilityTimeout" in p:
            attrs["VisibilityTimeout"] = str(p["VisibilityTimeout"])
        if local_queue_visibility is not None:
            attrs["VisibilityTimeout"] = str(local_queue_visibility)
        if "MessageRetentionPeriod" in p:
            attrs["MessageRetentionPeriod"] = str(p["MessageRetentionPeriod"])
        if "RedrivePolicy" in p:
            rp = p["RedrivePolicy"]
            attrs["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": rp["deadLetterTargetArn"],
                    "maxReceiveCount": str(rp["maxReceiveCount"]),
                }
            )
        url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        created[lid] = {"type": "AWS::SQS::Queue", "name": name, "url": url, "arn": tpl.arn(lid)}

    create_vector_resources(tpl, session, created)
    sns = session.client("sns", region_name=tpl.region)
    for lid in tpl.of_type("AWS::SNS::Topic"):
        name = tpl.physical_name(lid)
        arn = sns.create_topic(Name=name)["TopicArn"]
        created[lid] = {"type": "AWS::SNS::Topic", "name": name, "arn": arn}

    role_arn = None
    for lid in tpl.of_type("AWS::Serverless::StateMachine"):
        if role_arn is None:
            role_arn = iam.create_role(
                RoleName=f"{tpl.stack_name}-local-states",
                AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
            )["Role"]["Arn"]
        props = tpl.props(lid)
        name = tpl.physical_name(lid)
        definition, notes = moto_compat.adapt_definition(tpl.state_machine_definition(lid))
        for note in notes:
            log.info("state machine %s adapted for moto: %s", name, note)
        arn = sfn.create_state_machine(
            name=name,
            definition=definition,
            roleArn=role_arn,
            type=props.get("Type", "STANDARD"),
        )["stateMachineArn"]
        created[lid] = {
            "type": "AWS::Serverless::StateMachine",
            "name": name,
            "arn": arn,
            "adapted": notes,
        }

    for lid, spec in tpl.functions().items():
        created[lid] = {"type": "AWS::Serverless::Function", "name": spec.name, "arn": spec.arn}
        subscriptions = [
            sns.subscribe(TopicArn=ev.properties["Topic"], Protocol="lambda", Endpoint=spec.arn)[
                "SubscriptionArn"
            ]
            for ev in spec.events
            if ev.type == "SNS"
        ]
        if subscriptions:
            created[lid]["subscriptions"] = subscriptions
    if role_arn is not None:
        created["_local_states_role"] = {"type": "AWS::IAM::Role", "name": role_arn.split("/")[-1]}
    return created


def create_vector_resources(
    tpl: LocalTemplate, session: Any, created: dict[str, dict[str, Any]]
) -> None:
    """The template's S3 Vectors buckets, then their indexes (dimension, metric, data type and
    non-filterable metadata keys as declared)."""
    s3vectors = session.client("s3vectors", region_name=tpl.region)
    for lid in tpl.of_type("AWS::S3Vectors::VectorBucket"):
        p = tpl.props(lid)
        name = tpl.physical_name(lid)
        kwargs: dict[str, Any] = {"vectorBucketName": name}
        if "EncryptionConfiguration" in p:
            enc = p["EncryptionConfiguration"]
            kwargs["encryptionConfiguration"] = {"sseType": enc.get("SseType", "AES256")}
        s3vectors.create_vector_bucket(**kwargs)
        created[lid] = {"type": "AWS::S3Vectors::VectorBucket", "name": name, "arn": tpl.arn(lid)}
    for lid in tpl.of_type("AWS::S3Vectors::Index"):
        p = tpl.props(lid)
        name = tpl.physical_name(lid)
        kwargs = {
            "vectorBucketArn": tpl.vector_bucket_arn(lid),
            "indexName": name,
            "dataType": p["DataType"],
            "dimension": int(p["Dimension"]),
            "distanceMetric": p["DistanceMetric"],
        }
        keys = (p.get("MetadataConfiguration") or {}).get("NonFilterableMetadataKeys")
        if keys:
            kwargs["metadataConfiguration"] = {"nonFilterableMetadataKeys": list(keys)}
        s3vectors.create_index(**kwargs)
        created[lid] = {
            "type": "AWS::S3Vectors::Index",
            "name": name,
            "arn": tpl.arn(lid),
            "dimension": int(p["Dimension"]),
        }


def delete_resources(session: Any, created: dict[str, dict[str, Any]], region: str) -> None:
    """Remove what `create_resources` made, so that another local cloud of the same stack name
    can start later in this process (local clouds in one process share moto's state)."""
    clients = {
        s: session.client(s, region_name=region)
        for s in ("s3", "dynamodb", "sqs", "sns", "stepfunctions", "iam", "s3vectors")
    }
    # a vector bucket can be deleted only once its indexes are
    order = {"AWS::S3Vectors::Index": 0, "AWS::S3Vectors::VectorBucket": 1}
    for res in sorted(created.values(), key=lambda r: order.get(r["type"], 2)):
        typ, name = res["type"], res["name"]
        if typ == "AWS::S3Vectors::Index":
            clients["s3vectors"].delete_index(indexArn=res["arn"])
        elif typ == "AWS::S3Vectors::VectorBucket":
            clients["s3vectors"].delete_vector_bucket(vectorBucketName=name)
        elif typ == "AWS::Serverless::Function":
            for arn in res.get("subscriptions", []):
                clients["sns"].unsubscribe(SubscriptionArn=arn)
        elif typ == "AWS::S3::Bucket":
            _empty_and_delete_bucket(clients["s3"], name)
        elif typ == "AWS::DynamoDB::Table":
            clients["dynamodb"].delete_table(TableName=name)
        elif typ == "AWS::SQS::Queue":
            clients["sqs"].delete_queue(QueueUrl=res["url"])
        elif typ == "AWS::SNS::Topic":
            clients["sns"].delete_topic(TopicArn=res["arn"])
        elif typ == "AWS::Serverless::StateMachine":
            clients["stepfunctions"].delete_state_machine(stateMachineArn=res["arn"])
        elif typ == "AWS::IAM::Role":
            clients["iam"].delete_role(RoleName=name)


def _empty_and_delete_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objects = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for i in range(0, len(objects), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects[i : i + 1000]})
    s3.delete_bucket(Bucket=bucket)
