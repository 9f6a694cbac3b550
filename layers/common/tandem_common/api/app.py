"""The api function's app: the routes, the OpenAPI document at /openapi.json and Swagger UI at
/docs, and the one place where errors become responses.

Errors are `{"error": {"code", "message"}}`: malformed JSON 400, validation 422, unknown 404,
oversized 413, endpoint trouble 502/503, anything unexpected 500. On the OpenAI-compatible paths
(`openai_compat.py`) every error is OpenAI's `{"error": {"message", "type", "param", "code"}}`
instead, and validation is a 400 as OpenAI answers it (the SDKs raise `BadRequestError`).

The OpenAPI document is a file, `openapi.json` next to this module, written by `openapi.py` from
these same routes (`make openapi`; a test keeps it current): nothing builds it at run time.
"""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from tandem_common.api import openai_compat, search
from tandem_common.api.http import (
    APPLICATION_JSON,
    TEXT_HTML,
    App,
    NotFoundError,
    RequestValidationError,
    Response,
)
from tandem_common.api.routes import check_body_size, router
from tandem_common.errors import MalformedRequest, TandemError
from tandem_common.observability import logger
from tandem_common.settings import get_settings

OPENAPI_FILE = Path(__file__).with_name("openapi.json")  # written by openapi.py
TITLE, VERSION = "Tandem API", "1.0.0"

settings = get_settings()  # validated at cold start
app = App()
app.include_router(router)
app.include_router(openai_compat.router)
app.include_router(search.router)


def error_body(
    path: str, status: int, code: str, message: str, param: str | None = None
) -> dict[str, Any]:
    if openai_compat.is_openai_path(path):
        return openai_compat.openai_error(status, code, message, param)
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, param: str | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=APPLICATION_JSON,
        body=error_body(app.current_event.path, status, code, message, param),
    )


@lru_cache(maxsize=1)
def openapi_text() -> str:
    return OPENAPI_FILE.read_text()


@app.get("/openapi.json", include_in_schema=False)
def openapi_json() -> Response[Any]:
    return Response(status_code=200, content_type=APPLICATION_JSON, body=openapi_text())


@app.get("/docs", include_in_schema=False)
def swagger_ui() -> Response[Any]:
    """Swagger UI for the document, with the page Powertools generates. Its files are read from
    Powertools' package without importing `aws_lambda_powertools.event_handler`: that package's
    `__init__` imports every resolver and pydantic, which the layer does not ship."""
    assets = _powertools_swagger_ui()
    html = _swagger_html_module(assets).generate_swagger_html(
        openapi_text().replace("</", "<\\/"),  # the spec sits in a <script>: never close it
        (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        "",
        None,
    )
    return Response(status_code=200, content_type=TEXT_HTML, body=html)


def _powertools_swagger_ui() -> Path:
    spec = importlib.util.find_spec("aws_lambda_powertools")  # finds; imports nothing of it
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "event_handler" / "openapi" / "swagger_ui"


@lru_cache(maxsize=1)
def _swagger_html_module(assets: Path) -> Any:
    """Powertools' `swagger_ui/html.py` (it imports nothing at run time) loaded on its own."""
    spec = importlib.util.spec_from_file_location("_powertools_swagger_html", assets / "html.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@app.exception_handler(TandemError)
def handle_domain_error(exc: TandemError) -> Response[Any]:
    if exc.status >= 500:
        logger.warning("request failed", extra={"code": exc.code})
    return error_response(exc.status, exc.code, exc.message, exc.param)


@app.exception_handler(RequestValidationError)
def handle_validation_error(exc: RequestValidationError) -> Response[Any]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "request body is not valid JSON")
    if openai_compat.is_openai_path(app.current_event.path):
        return _openai_validation_error(errors)
    details = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in errors[:10]
    )
    return error_response(422, "validation_error", details or "invalid request")


def _openai_validation_error(errors: Sequence[Any]) -> Response[Any]:
    """The first problem, as OpenAI words it: 400 with the field in `param`."""
    first = errors[0] if errors else {}
    loc = list(first.get("loc", ()))
    where = loc[1:] if loc and loc[0] in ("body", "path", "query", "header") else loc
    param = ".".join(str(p) for p in where) or None
    kind, msg = first.get("type"), first.get("msg", "invalid")
    if param is None:
        message = "the request body must be a JSON object"
    elif kind == "missing":
        message = f"Missing required parameter: '{param}'."
    elif kind == "invalid_input":  # EmbeddingsRequest's own messages name the field already
        message = msg
    else:
        message = f"Invalid '{param}': {msg}"
    return error_response(400, "invalid_request", message, param)


@app.exception_handler(RecursionError)
def handle_too_deep(exc: RecursionError) -> Response[Any]:
    # json.loads raises RecursionError (not a JSONDecodeError) on deeply nested bodies
    return error_response(400, "malformed_json", "request body is nested too deeply")


@app.not_found
def handle_not_found(exc: NotFoundError) -> Response[Any]:
    return error_response(404, "not_found", "no such route")


@app.exception_handler(Exception)
def handle_unexpected(exc: Exception) -> Response[Any]:
    logger.exception("unhandled error")
    return error_response(500, "internal_error", "internal error")


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One API Gateway payload-v2 event → its response."""
    try:
        check_body_size(event.get("rawPath", ""), event.get("body"))
        check_body_text(event)
    except TandemError as exc:  # before parsing: never json.loads a body we refuse
        body = error_body(event.get("rawPath", ""), exc.status, exc.code, exc.message, exc.param)
        return {
            "statusCode": exc.status,
            "headers": {"Content-Type": APPLICATION_JSON},
            "body": json.dumps(body),
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)


def check_body_text(event: dict[str, Any]) -> None:
    """A binary (base64) body must be UTF-8: API Gateway base64-encodes bodies that are not."""
    body = event.get("body")
    if body is None or not event.get("isBase64Encoded"):
        return
    try:
        base64.b64decode(body, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise MalformedRequest("request body is not UTF-8 text") from None
