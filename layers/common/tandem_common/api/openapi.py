"""Writes the api's OpenAPI document (`openapi.json`, served by `app.py` at /openapi.json) from the
api's own routes.

The document is assembled here from `app.routes`: each route's method and rule (`<name>` becomes
`{name}`), its options (`summary`, `description`, `tags`, `operation_id`, `deprecated`,
`responses`, `include_in_schema`), its path, query and header parameters (schema, constraints,
default, whether required) and its body, with the schemas of every type named, bodies and
responses alike, from msgspec (`msgspec.json.schema_components`) under `components/schemas`. A
response's `content` entry may name a model (`{"model": JobView}`): it becomes a `$ref` to the
model's schema. The only responses are those the routes declare: the non-OpenAI routes declare
their 422 `ErrorBody`, the OpenAI-compatible ones answer validation with a 400 and have none.
Never imported by the api at run time.

    python -m tandem_common.api.openapi          # write openapi.json (`make openapi`)
    python -m tandem_common.api.openapi --check  # exit 1 when openapi.json is not current
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import msgspec

from tandem_common.api import http

OPENAPI_FILE = Path(__file__).with_name("openapi.json")
OPENAPI_VERSION = "3.1.0"  # JSON Schema 2020-12, as msgspec writes it
REF_TEMPLATE = "#/components/schemas/{name}"
# the app validates its settings on import: these names only fill the required ones
_PLACEHOLDER_ENV = {"DATA_BUCKET": "openapi-document", "JOBS_TABLE": "openapi-document"}
_OPERATION_OPTIONS = {  # route option: OpenAPI operation field
    "summary": "summary",
    "description": "description",
    "tags": "tags",
    "operation_id": "operationId",
    "deprecated": "deprecated",
}


def _path(rule: str) -> str:
    return re.sub(r"<(\w+)>", r"{\1}", rule)


def _operation_id(route: http.Route) -> str:
    """Powertools' (and FastAPI's) default: the function's name, the path and the method."""
    return (
        re.sub(r"\W", "_", f"{route.func.__name__}{_path(route.rule)}") + f"_{route.method}".lower()
    )


class _Schemas:
    """Types to document: each gets a placeholder now and its schema once all are known (one
    `schema_components` call, so every model is one component)."""

    def __init__(self) -> None:
        self.types: list[Any] = []
        self.slots: list[dict[str, Any]] = []

    def of(self, kind: Any) -> dict[str, Any]:
        slot: dict[str, Any] = {}
        self.types.append(kind)
        self.slots.append(slot)
        return slot

    def resolve(self) -> dict[str, Any]:
        schemas, components = msgspec.json.schema_components(self.types, ref_template=REF_TEMPLATE)
        for slot, schema in zip(self.slots, schemas, strict=True):
            slot.update(schema)
        return components


def _parameters(route: http.Route, schemas: _Schemas) -> list[dict[str, Any]]:
    out = []
    for name, (marker, kind, default) in route.params.items():
        if marker.where == "body":
            continue
        schema = schemas.of(http.constrained(kind, marker.constraints))
        if default is not ... and default is not None:
            schema["default"] = msgspec.to_builtins(default)
        out.append(
            {
                "name": marker.alias or name,
                "in": marker.where,
                "required": marker.where == "path" or default is ...,
                "schema": schema,
            }
        )
    return out


def _request_body(route: http.Route, schemas: _Schemas) -> dict[str, Any] | None:
    for marker, kind, default in route.params.values():
        if marker.where == "body":
            schema = schemas.of(http.constrained(kind, marker.constraints))
            return {
                "content": {http.APPLICATION_JSON: {"schema": schema}},
                "required": default is ...,
            }
    return None


def _responses(route: http.Route, schemas: _Schemas) -> dict[str, Any]:
    declared = route.options.get("responses") or {200: {"description": "OK"}}
    out: dict[str, Any] = {}
    for code, response in declared.items():
        response = dict(response)
        content = {}
        for content_type, media in (response.get("content") or {}).items():
            media = dict(media)
            if "model" in media:
                media["schema"] = schemas.of(media.pop("model"))
            content[content_type] = media
        if content:
            response["content"] = content
        response.setdefault("description", "OK" if int(code) < 400 else "error")
        out[str(code)] = response
    return out


def _operation(route: http.Route, schemas: _Schemas) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": _operation_id(route)}
    for option, key in _OPERATION_OPTIONS.items():
        if route.options.get(option) is not None:
            operation[key] = route.options[option]
    if parameters := _parameters(route, schemas):
        operation["parameters"] = parameters
    if (body := _request_body(route, schemas)) is not None:
        operation["requestBody"] = body
    operation["responses"] = _responses(route, schemas)
    return operation


def build() -> dict[str, Any]:
    for name, value in _PLACEHOLDER_ENV.items():
        os.environ.setdefault(name, value)
    from tandem_common.api.app import TITLE, VERSION, app

    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in app.routes:
        if route.options.get("include_in_schema", True):
            operations = paths.setdefault(_path(route.rule), {})
            operations[route.method.lower()] = _operation(route, schemas)
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": TITLE, "version": VERSION},
        "servers": [{"url": "/"}],
        "paths": paths,
    }
    if components := schemas.resolve():
        document["components"] = {"schemas": components}
    return document


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OPENAPI_FILE.read_text() != text:
            print(f"{OPENAPI_FILE} is not current: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    OPENAPI_FILE.write_text(text)
    print(f"wrote {OPENAPI_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
