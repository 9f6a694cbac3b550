"""Schemathesis against the api's own OpenAPI schema, served by the local cloud's HTTP API.

Every operation gets a bounded number of generated requests (positive and negative), no
shrinking: no 5xx, every status code is declared, every body matches its declared schema.
POST /v1/jobs starts real executions, so accepted bodies are trimmed to a few short documents
(the shape stays what schemathesis generated) and webhook targets are dropped (no outbound
traffic); the cloud is drained afterwards.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(cloud: Any) -> Any:
    cloud.jobs.drain()
    with urllib.request.urlopen(cloud.api_url + "/openapi.json", timeout=30) as r:
        raw = json.loads(r.read())
    raw["servers"] = [{"url": cloud.api_url}]
    yield schemathesis.openapi.from_dict(raw)
    cloud.jobs.drain(timeout=300)  # the accepted jobs finish before the next module runs


MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def _bound_job_body(body: Any) -> bool:
    """Keep generated job bodies cheap for the CPU endpoint and free of outbound webhooks.

    Returns whether the body was changed (a trimmed negative case may have become valid).
    """
    if not isinstance(body, dict):
        return False
    before = json.dumps(body, sort_keys=True, default=str)
    docs = body.get("documents")
    if isinstance(docs, list):
        del docs[3:]
        for doc in docs:
            if isinstance(doc, dict) and isinstance(doc.get("text"), str):
                doc["text"] = doc["text"][:500]
    options = body.get("options")
    if isinstance(options, dict) and options.get("webhook_url") is not None:
        options["webhook_url"] = None
    return json.dumps(body, sort_keys=True, default=str) != before


def _operations(api_schema: Any, mode: GenerationMode) -> list[tuple[str, str]]:
    """Every operation; in negative mode those with something to get wrong (parameters or a
    body): `GET /v1/models` has neither, and hypothesis cannot make an invalid request of it."""
    return [
        (method.upper(), path)
        for path, ops in api_schema.raw_schema["paths"].items()
        for method, op in ops.items()
        if mode is GenerationMode.POSITIVE or op.get("parameters") or op.get("requestBody")
    ]


def _fuzz(op: Any, mode: GenerationMode, base_url: str, statuses: list[int]) -> None:
    is_create_job = (op.method.upper(), op.path) == ("POST", "/v1/jobs")

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # the same examples every run
        database=None,
    )
    def run(case: Any) -> None:
        trimmed = is_create_job and _bound_job_body(case.body)
        response = case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=60)
        if not trimmed:
            statuses.append(response.status_code)

    run()


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_api_conforms_to_its_schema(mode: GenerationMode, api_schema: Any, cloud: Any) -> None:
    """Every operation in the served schema, so a new route is fuzzed without editing this."""
    operations = _operations(api_schema, mode)
    assert ("POST", "/v1/jobs") in operations and len(operations) >= 4
    failures: dict[str, str] = {}
    seen: dict[str, list[int]] = {}
    for method, path in operations:
        statuses = seen.setdefault(f"{method} {path}", [])
        try:
            _fuzz(api_schema[path][method], mode, cloud.api_url, statuses)
        except Exception as exc:  # noqa: BLE001 - collected and reported below, per operation
            failures[f"{method} {path}"] = f"{type(exc).__name__}: {exc}"
    print(f"schemathesis {mode.value}: " + json.dumps({k: sorted(set(v)) for k, v in seen.items()}))
    assert failures == {}
    assert all(seen.values()), seen
    if mode is GenerationMode.NEGATIVE:
        # Invalid requests are refused with a 4xx, /v1/embeddings included (strict types there)
        bad = {k: [s for s in v if not 400 <= s < 500] for k, v in seen.items()}
        assert not any(bad.values()), bad


def test_schema_declares_errors_and_success_bodies(api_schema: Any) -> None:
    raw = api_schema.raw_schema
    for path, ops in raw["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            # The OpenAI-compatible routes answer validation with 400, in OpenAI's error shape
            openai_route = path.startswith(("/v1/embeddings", "/v1/models"))
            required = {"400", "413", "500"} if openai_route else {"400", "413", "422", "500"}
            error_body = "/OpenAIErrorBody" if openai_route else "/ErrorBody"
            assert required <= codes, (method, path, codes)
            for code, response in op["responses"].items():
                ref = response["content"]["application/json"]["schema"].get("$ref", "")
                assert ref.startswith("#/components/schemas/"), (method, path, code)
                if int(code) >= 400:
                    assert ref.endswith(error_body), (method, path, code)
