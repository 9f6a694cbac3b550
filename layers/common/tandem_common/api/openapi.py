"""Writes the api's OpenAPI document (`openapi.json`, served by `app.py` at /openapi.json) from the
api's own routes, with Powertools' OpenAPI generator.

Each route of `app.py` is registered on a Powertools `APIGatewayHttpResolver` (validation on, so
it reads the parameters) as a stub whose signature carries Powertools' parameter classes in place
of `http.py`'s: the document is exactly what Powertools would serve for these routes, less the 422
it adds to the OpenAI-compatible ones (`openai_compat.without_validation_422`). Never imported by
the api at run time (the OpenAPI machinery is what its cold start must not pay for).

    python -m tandem_common.api.openapi          # write openapi.json (`make openapi`)
    python -m tandem_common.api.openapi --check  # exit 1 when openapi.json is not current
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from tandem_common.api import http, openai_compat

OPENAPI_FILE = Path(__file__).with_name("openapi.json")
# the app validates its settings on import: these names only fill the required ones
_PLACEHOLDER_ENV = {"DATA_BUCKET": "openapi-document", "JOBS_TABLE": "openapi-document"}


def _stub(route: http.Route) -> Callable[..., Any]:
    """A function Powertools can read: the route's name and parameters, Powertools' markers."""
    from aws_lambda_powertools.event_handler.openapi import params

    markers = {"body": params.Body, "path": params.Path, "query": params.Query}
    markers["header"] = params.Header

    def stub(**_: Any) -> Any:
        raise NotImplementedError("only read for the OpenAPI document")

    signature = []
    for name, (marker, kind, default) in route.params.items():
        powertools = markers[marker.where](
            **({"alias": marker.alias} if marker.alias else {}), **marker.constraints
        )
        signature.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if default is ... else default,
                annotation=Annotated[kind, powertools],
            )
        )
    stub.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    stub.__name__ = stub.__qualname__ = route.func.__name__
    return stub


def build() -> dict[str, Any]:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    for name, value in _PLACEHOLDER_ENV.items():
        os.environ.setdefault(name, value)
    from tandem_common.api.app import TITLE, VERSION, app

    resolver = APIGatewayHttpResolver(enable_validation=True)
    for route in app.routes:
        if route.options.get("include_in_schema", True):
            resolver.route(route.rule, route.method, **route.options)(_stub(route))
    schema = json.loads(resolver.get_openapi_json_schema(title=TITLE, version=VERSION))
    return openai_compat.without_validation_422(schema)


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
