"""Shared fixtures: function env, a moto cloud built from template.yaml, handler loading."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import yaml
from hypothesis import settings
from moto import mock_aws
from tandem_common.adapters import aws
from tandem_common.settings import get_settings

# No per-example deadline: this machine has 2 cores with CPU steal, and a timing assertion in a
# property test is a flaky test (speed targets live in bench/, not here).
settings.register_profile("tandem", deadline=None)
settings.load_profile("tandem")

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
# The local cloud's names for stack `tandem` (tandem/local/template.py), as in events/ and env.json
BUCKET = "tandem-databucket"
JOBS_TABLE = "tandem-JobsTable"
IDEMPOTENCY_TABLE = "tandem-IdempotencyTable"
STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:tandem-pipeline"

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "DATA_BUCKET": BUCKET,
    "JOBS_TABLE": JOBS_TABLE,
    "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
    "STATE_MACHINE_ARN": STATE_MACHINE_ARN,
    "ENDPOINT_NAME": "tandem-embed",
    "EVENT_BUS_NAME": "default",
    "BATCH_SIZE": "64",
    "CHUNK_TOKENS": "256",
    "CHUNK_OVERLAP": "32",
    "INLINE_MAP_MAX_BATCHES": "100",
    "ALLOW_PRIVATE_WEBHOOKS": "false",
    "JOB_TTL_DAYS": "30",
    "POWERTOOLS_SERVICE_NAME": "tandem-test",
    "POWERTOOLS_METRICS_NAMESPACE": "TandemTest",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "LOG_LEVEL": "WARNING",
}


@pytest.fixture(autouse=True)
def function_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in [*ENV, "AWS_ENDPOINT_URL", "AWS_PROFILE"]:
        monkeypatch.delenv(key, raising=False)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    aws.reset_clients()
    yield
    get_settings.cache_clear()
    aws.reset_clients()


class _CfnLoader(yaml.SafeLoader):
    pass


def _ignore_tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _ignore_tag)


def template_tables() -> dict[str, dict[str, Any]]:
    """KeySchema/AttributeDefinitions of the template's tables, by partition key name."""
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)
    tables = {}
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::DynamoDB::Table":
            props = resource["Properties"]
            pk = next(k["AttributeName"] for k in props["KeySchema"] if k["KeyType"] == "HASH")
            tables[pk] = {
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
            }
            if "GlobalSecondaryIndexes" in props:  # e.g. the jobs table's status index
                tables[pk]["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return tables


@pytest.fixture
def cloud() -> Iterator[None]:
    """A moto account with the data bucket, both tables (schema from template.yaml) and the
    state machine."""
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        ddb = boto3.client("dynamodb")
        tables = template_tables()
        for name, pk in ((JOBS_TABLE, "job_id"), (IDEMPOTENCY_TABLE, "id")):
            ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **tables[pk])
        boto3.client("stepfunctions").create_state_machine(
            name="tandem-pipeline",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/tandem-sfn",
        )
        yield


VECTOR_DIMS = 8  # fake_endpoint_run's vectors
DOCS_TABLE = "tandem-DocumentsTable"
VECTOR_INDEX_ARN = (
    "arn:aws:s3vectors:us-east-1:123456789012:bucket/tandem-vectorbucket/index/tandem-vectorindex"
)


@pytest.fixture
def vector_index(cloud: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The template's vector bucket and index (sized to the stand-in endpoint's 8-dimensional
    vectors) and documents table, with QueryVectors (moto_compat), and the functions'
    environment naming them. Yields the s3vectors client."""
    from tandem_common.adapters import vectors

    from tandem.local import moto_compat
    from tandem.local.template import LocalTemplate, create_vector_resources

    moto_compat.add_vector_query()
    tpl = LocalTemplate(ROOT / "template.yaml", overrides={"EmbeddingDimensions": str(VECTOR_DIMS)})
    create_vector_resources(tpl, boto3.Session(region_name="us-east-1"), {})
    boto3.client("dynamodb").create_table(
        TableName=DOCS_TABLE, BillingMode="PAY_PER_REQUEST", **template_tables()["document_id"]
    )
    env = tpl.functions()["CollectFunction"].environment
    assert env["VECTOR_INDEX_ARN"] == VECTOR_INDEX_ARN and env["DOCUMENTS_TABLE"] == DOCS_TABLE
    monkeypatch.setenv("VECTOR_INDEX_ARN", VECTOR_INDEX_ARN)
    monkeypatch.setenv("DOCUMENTS_TABLE", DOCS_TABLE)
    get_settings.cache_clear()
    vectors.reset_dimension_cache()
    yield boto3.client("s3vectors")
    vectors.reset_dimension_cache()


@dataclass
class LambdaContext:
    function_name: str = "tandem-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:tandem-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def load_handler(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Load functions/<name>/handler.py fresh, as module `handler_<name>`; its folder goes on
    sys.path (as in Lambda) so the handler can import its sibling domain module."""

    def load(name: str) -> ModuleType:
        folder = ROOT / "functions" / name
        monkeypatch.syspath_prepend(str(folder))
        for sibling in folder.glob("*.py"):
            sys.modules.pop(sibling.stem, None)
        spec = importlib.util.spec_from_file_location(f"handler_{name}", folder / "handler.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    return load


def load_event(function: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / function / f"{name}.json").read_text())
    return loaded


@pytest.fixture
def event() -> Callable[[str, str], dict[str, Any]]:
    return load_event


def fake_endpoint_run(inputs_uri: str, outputs_uri: str, dims: int = 8) -> int:
    """Play the endpoint's claim-check role: read a batch file, write float32 [n, dims] rows.

    Row i of a batch is a deterministic function of its text, so tests can check the mapping.
    """
    from tandem_common.adapters.storage import Storage
    from tandem_common.text.npy import encode_rows

    storage = Storage()
    rows = storage.get_jsonl(inputs_uri)
    vectors = [
        [float(len(r["text"]) % 97), float(i)] + [0.5] * (dims - 2) for i, r in enumerate(rows)
    ]
    storage.put_bytes(outputs_uri, encode_rows(vectors, dims), "application/octet-stream")
    return len(rows)


def s3_keys(prefix: str = "") -> list[str]:
    out = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in out.get("Contents", []))


def s3_json(key: str) -> Any:
    return json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


def s3_jsonl(key: str) -> list[Any]:
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def result_rows(job_id: str) -> list[Any]:
    """Every result vector row of a delivered job: its shards' JSONL, in shard order."""
    rows: list[Any] = []
    for shard in s3_jsonl(f"jobs/{job_id}/result/shards.jsonl"):
        rows += s3_jsonl(f"jobs/{job_id}/result/shards/vectors-{shard['index']:05d}.jsonl")
    return rows


def result_matrix(job_id: str) -> Any:
    """The job's shards' .npy files, stacked (numpy, float32)."""
    import io

    import numpy as np

    parts = [
        np.load(io.BytesIO(s3_bytes(f"jobs/{job_id}/result/shards/vectors-{s['index']:05d}.npy")))
        for s in s3_jsonl(f"jobs/{job_id}/result/shards.jsonl")
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def s3_bytes(key: str) -> bytes:
    body: bytes = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body


def job_item(job_id: str) -> dict[str, Any] | None:
    from tandem_common.adapters.jobs import JobStore

    job = JobStore(JOBS_TABLE).get(job_id)
    return None if job is None else job.model_dump()


@pytest.fixture
def api(cloud: None, load_handler: Any, lambda_context: Any) -> Any:
    """Call the api handler with an event; returns (status, body parsed when JSON)."""
    module = load_handler("api")

    def call(event: dict[str, Any]) -> tuple[int, Any]:
        response = module.lambda_handler(event, lambda_context)
        body = response.get("body") or ""
        if response.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        ctype = {k.lower(): v for k, v in (response.get("headers") or {}).items()}.get(
            "content-type", ""
        )
        return response["statusCode"], json.loads(body) if "json" in ctype else body

    return call
