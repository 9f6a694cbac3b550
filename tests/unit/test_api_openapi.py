"""The api's own router (tandem_common/api/http.py) and its OpenAPI document.

The document is a file written from the routes by `openapi.py` (`make openapi`), schemas by
msgspec: it must be current. The router must answer as Powertools' resolver did: the same
validation error shapes (`loc` starting with where the problem was), 404 for an unknown route or
method; parameters are validated by msgspec, a model body by its model's own `model_validate`.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Annotated, Any, Self

import pytest
from tandem_common.api import http, openapi
from tandem_common.models import UploadRequest, ValidationError

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


def test_the_document_declares_parameters_bodies_and_error_responses() -> None:
    spec = json.loads(openapi.OPENAPI_FILE.read_text())
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "Tandem API"
    shards = spec["paths"]["/v1/jobs/{job_id}/shards"]["get"]
    assert shards["operationId"] == "list_shards_v1_jobs__job_id__shards_get"
    params = {p["name"]: p for p in shards["parameters"]}
    assert params["job_id"] == {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": 64},
    }
    assert params["limit"]["in"] == "query" and not params["limit"]["required"]
    assert params["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 1000,
    }
    create = spec["paths"]["/v1/jobs"]["post"]
    (key,) = create["parameters"]
    assert (key["name"], key["in"], key["required"]) == ("idempotency-key", "header", False)
    assert {"type": "string", "maxLength": 256} in key["schema"]["anyOf"]
    body = create["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobCreate"
    }
    schemas = spec["components"]["schemas"]
    assert schemas["JobCreate"]["additionalProperties"] is False
    refs = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(spec)))
    assert refs == set(schemas)  # every $ref is a component, every component is used
    # the 422 is declared on the routes that answer validation with it, not on OpenAI's
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            assert ("422" in operation["responses"]) != path.startswith(
                ("/v1/embeddings", "/v1/models")
            ), path


class _Body(UploadRequest):
    """A strict model (unknown fields refused) with its own `model_validate`."""

    @classmethod
    def model_validate(cls, data: object) -> Self:
        if data == {"filename": "own"}:
            raise ValidationError("its own check - at `$.filename`")
        return super().model_validate(data)


def _route() -> http.Route:
    router = http.Router()

    @router.post("/things/<thing_id>")
    def put_thing(
        thing_id: Annotated[str, http.Path(max_length=4)],
        body: Annotated[_Body, http.Body()],
        start: Annotated[int, http.Query(ge=0)] = 0,
        key: Annotated[str | None, http.Header(alias="x-key", max_length=2)] = None,
    ) -> None:
        raise AssertionError("never called: the tests read its signature and arguments")

    return router.routes[0]


def _arguments(
    path: str = "t1", body: str = '{"filename": "abc"}', **request: Any
) -> dict[str, Any]:
    parts: dict[str, Any] = {"headers": {}, "query": {}, **request}
    req = http.Request(method="POST", path=f"/things/{path}", body=body, **parts)
    return _route().arguments(req, {"thing_id": path})


def test_the_router_coerces_query_strings_and_reads_aliases() -> None:
    args = _arguments(query={"start": "5"}, headers={"x-key": "ab"})
    assert args == {"thing_id": "t1", "body": _Body(filename="abc"), "start": 5, "key": "ab"}
    assert _arguments()["start"] == 0 and _arguments()["key"] is None


@pytest.mark.parametrize(
    ("request_parts", "loc", "kind"),
    [
        ({"path": "t12345"}, ("path", "thing_id"), "invalid"),
        ({"query": {"start": "-1"}}, ("query", "start"), "invalid"),
        ({"query": {"start": "five"}}, ("query", "start"), "invalid"),
        ({"headers": {"x-key": "abc"}}, ("header", "x-key"), "invalid"),
        ({"body": '{"filename": ""}'}, ("body", "filename"), "invalid"),
        ({"body": '{"content_type": "text/plain"}'}, ("body", "filename"), "missing"),
        ({"body": '{"filename": "a", "colour": 1}'}, ("body", "colour"), "extra_forbidden"),
        ({"body": '{"filename": "own"}'}, ("body", "filename"), "invalid"),  # its own check
        ({"body": ""}, ("body",), "invalid"),
        ({"body": "[1]"}, ("body",), "invalid"),
        ({"body": "{nope"}, ("body", 1), "json_invalid"),
    ],
)
def test_the_router_says_where_each_problem_is(
    request_parts: dict[str, Any], loc: tuple[Any, ...], kind: str
) -> None:
    with pytest.raises(http.RequestValidationError) as raised:
        _arguments(**request_parts)
    (error,) = raised.value.errors()
    assert (error["loc"], error["type"]) == (loc, kind) and error["msg"]


def test_problems_with_parameters_and_body_are_raised_together() -> None:
    with pytest.raises(http.RequestValidationError) as raised:
        _arguments(query={"start": "-1"}, body='{"filename": ""}')
    assert [e["loc"] for e in raised.value.errors()] == [("query", "start"), ("body", "filename")]


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
