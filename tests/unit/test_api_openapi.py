"""The api's own router (tandem_common/api/http.py) and its OpenAPI document.

The document is a file written from the routes by Powertools' generator (`make openapi`): it
must be current. The router must answer as Powertools' resolver did: the same validation error
shapes (`loc` starting with where the problem was), 404 for an unknown route or method.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tandem_common.api import openapi

JOB = "2e7b9d1f-3a5c-4b6d-9e8f-0a1b2c3d4e5f"


def test_the_openapi_document_is_current() -> None:
    assert openapi.OPENAPI_FILE.read_text() == openapi.render(), "run `make openapi`"
    spec = json.loads(openapi.OPENAPI_FILE.read_text())
    # every route of the app is in it, bar the two that serve it
    from tandem_common.api.app import app

    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    routes = {
        (r.rule.replace("<", "{").replace(">", "}"), r.method.lower())
        for r in app.routes
        if r.options.get("include_in_schema", True)
    }
    assert documented == routes and len(routes) >= 8


def _request(event: Any, method: str, path: str, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = copy.deepcopy(event("api", "get_job"))
    request["rawPath"] = path
    request["requestContext"]["http"]["method"] = method
    request["requestContext"]["http"]["path"] = path
    request.update(extra)
    return request


def test_parameters_are_validated_where_they_come_from(api: Any, event: Any) -> None:
    status, body = api(_request(event, "GET", "/v1/jobs/" + "x" * 65))
    assert status == 422 and body["error"]["message"].startswith("path.job_id:")
    shards = _request(
        event, "GET", f"/v1/jobs/{JOB}/shards", queryStringParameters={"limit": "1001"}
    )
    status, body = api(shards)
    assert status == 422 and body["error"]["message"].startswith("query.limit:")
    shards["queryStringParameters"] = {"start": "not a number"}
    status, body = api(shards)
    assert status == 422 and "query.start" in body["error"]["message"]
    long_key = _request(
        event,
        "POST",
        f"/v1/jobs/{JOB}/retry",
        headers={"Idempotency-Key": "k" * 257, "content-type": "application/json"},
    )
    status, body = api(long_key)
    assert status == 422 and body["error"]["message"].startswith("header.idempotency-key:")


def test_unknown_routes_and_methods_are_404(api: Any, event: Any) -> None:
    for method, path in [
        ("GET", "/v1/nothing"),
        ("DELETE", f"/v1/jobs/{JOB}"),
        ("GET", "/v1/jobs/"),
    ]:
        status, body = api(_request(event, method, path))
        assert status == 404 and body == {
            "error": {"code": "not_found", "message": "no such route"}
        }


def test_a_body_that_is_not_json_or_missing_is_refused(api: Any, event: Any) -> None:
    create = event("api", "create_job_inline")
    status, body = api({**create, "body": "{not json"})
    assert status == 400 and body["error"]["code"] == "malformed_json"
    status, body = api({**create, "body": None})
    assert status == 422 and body["error"]["message"].startswith("body")
