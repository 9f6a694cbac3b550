"""A small router for API Gateway HTTP API events (payload v2): routes, parameters validated with
pydantic, one `Response` type.

Why not Powertools' `APIGatewayHttpResolver`: importing any module of
`aws_lambda_powertools.event_handler` runs that package's `__init__`, which imports every resolver
Powertools has (AppSync, Bedrock agents, VPC Lattice, ...), asyncio and every event data class.
That import alone took more of the api's cold start than its whole budget over `import boto3`
(docs/BENCHMARKS.md, "Lambda handlers"). The routes keep Powertools' shape, so moving one between
the two is a change of imports: `@router.get(path, summary=..., responses=...)`, and parameters
declared as `Annotated[T, Body()]`, `Path(...)`, `Query(...)`, `Header(alias=...)` with pydantic
`Field` constraints. `openapi.py` hands the same routes to Powertools when the OpenAPI document is
generated (`make openapi`); the api serves that document as a file.

Validation follows Powertools' rules and error shapes: a body that is not JSON is a `json_invalid`
error, every other problem a pydantic error whose `loc` starts with where it was (`body`, `path`,
`query`, `header`); all of them are raised together as one `RequestValidationError`.
"""

from __future__ import annotations

import base64
import inspect
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

APPLICATION_JSON = "application/json"
TEXT_HTML = "text/html"
# Powertools' rule for a path parameter: one segment of anything but a slash
_SEGMENT = r"[\w\-._~()'!*:@,;=+&$%<> \[\]{}|^]+"
_PARAM = re.compile(r"<(\w+)>")
T = TypeVar("T")


class Param:
    """Where a route parameter comes from; keyword arguments are pydantic `Field` constraints."""

    where = ""

    def __init__(self, alias: str | None = None, **constraints: Any) -> None:
        self.alias = alias
        self.constraints = constraints


class Body(Param):
    where = "body"


class Path(Param):
    where = "path"


class Query(Param):
    where = "query"


class Header(Param):
    where = "header"


class Response(Generic[T]):
    """A route's answer (Powertools' `Response` shape): a dict or model dump becomes JSON."""

    def __init__(
        self,
        status_code: int,
        content_type: str = APPLICATION_JSON,
        body: T | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.content_type = content_type
        self.body = body
        self.headers = headers or {}

    def to_event(self) -> dict[str, Any]:
        body: Any = self.body
        encoded = False
        if isinstance(body, bytes):
            body, encoded = base64.b64encode(body).decode("ascii"), True
        elif body is not None and not isinstance(body, str):
            body = json.dumps(body, separators=(",", ":"))
        return {
            "statusCode": self.status_code,
            "headers": {"Content-Type": self.content_type, **self.headers},
            "body": body or "",
            "isBase64Encoded": encoded,
            "cookies": [],
        }


class RequestValidationError(Exception):
    """The request's parameters or body are invalid: `errors()` as pydantic words them."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} validation error(s)")
        self._errors = errors

    def errors(self) -> list[dict[str, Any]]:
        return self._errors


class NotFoundError(Exception):
    """No route matches the request's method and path."""


@dataclass(frozen=True)
class Request:
    """The parts of a payload-v2 event the routes read (headers lower-cased, body decoded)."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: str | None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Request:
        http = (event.get("requestContext") or {}).get("http") or {}
        body = event.get("body")
        if body is not None and event.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8")  # handle() refused non-UTF-8 bodies
        return cls(
            method=str(http.get("method", "GET")).upper(),
            path=str(event.get("rawPath") or http.get("path") or "/"),
            headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
            query=dict(event.get("queryStringParameters") or {}),
            body=body,
        )


@dataclass
class Route:
    method: str
    rule: str  # "/v1/jobs/<job_id>"
    func: Callable[..., Any]
    options: dict[str, Any]  # summary, responses, include_in_schema, ... (for the OpenAPI document)
    pattern: re.Pattern[str] = field(init=False)
    _params: dict[str, tuple[Param, Any, Any]] | None = field(default=None, init=False)
    _model: type[BaseModel] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        regex = _PARAM.sub(lambda m: f"(?P<{m[1]}>{_SEGMENT})", self.rule)
        self.pattern = re.compile(f"^{regex}$")

    @property
    def params(self) -> dict[str, tuple[Param, Any, Any]]:
        """name: (where it comes from, its type, its default), read from the function's
        signature on the route's first request."""
        if self._params is None:
            hints = typing.get_type_hints(self.func, include_extras=True)
            params = {}
            for name, parameter in inspect.signature(self.func).parameters.items():
                hint = hints[name]
                marker = next(
                    (m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Param)), None
                )
                if marker is None:
                    raise TypeError(f"{self.func.__name__}: say where parameter {name} comes from")
                empty = parameter.default is inspect.Parameter.empty
                params[name] = (marker, hint.__origin__, ... if empty else parameter.default)
            self._params = params
        return self._params

    def model(self) -> type[BaseModel]:
        """The route's parameters as one pydantic model, built on its first request."""
        if self._model is None:
            fields: dict[str, Any] = {
                name: (kind, Field(default, alias=marker.alias, **marker.constraints))
                for name, (marker, kind, default) in self.params.items()
            }
            self._model = create_model(
                f"{self.func.__name__}_request",
                __config__=ConfigDict(populate_by_name=True),
                **fields,
            )
        assert self._model is not None
        return self._model

    def arguments(self, request: Request, path_params: dict[str, str]) -> dict[str, Any]:
        """The route function's keyword arguments, validated; RequestValidationError if not."""
        data: dict[str, Any] = {}
        where_of: dict[str, str] = {}
        for name, (marker, _, _) in self.params.items():
            key = marker.alias or name
            where_of[key] = marker.where
            if marker.where == "body":
                data[key] = _json_body(request.body)
            else:
                source = {"path": path_params, "query": request.query, "header": request.headers}
                value = source[marker.where].get(key.lower() if marker.where == "header" else key)
                if value is not None:
                    data[key] = value
        try:
            parsed = self.model().model_validate(data)
        except ValidationError as exc:
            errors: list[dict[str, Any]] = []
            for error in exc.errors(include_url=False):
                loc = tuple(error["loc"])
                where = where_of.get(str(loc[0]), "body") if loc else "body"
                at = (where, *loc[1:]) if where == "body" else (where, *loc)
                errors.append({**error, "loc": at})
            raise RequestValidationError(errors) from None
        return {name: getattr(parsed, name) for name in self.params}


def _json_body(body: str | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)  # a RecursionError (too deeply nested) goes to the app's handler
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error"}]
        ) from None


class Router:
    """Routes, registered as Powertools' routers register them."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, rule: str, method: str, **options: Any) -> Callable[[Any], Any]:
        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self.routes.append(Route(method.upper(), rule, func, options))
            return func

        return register

    def get(self, rule: str, **options: Any) -> Callable[[Any], Any]:
        return self.route(rule, "GET", **options)

    def post(self, rule: str, **options: Any) -> Callable[[Any], Any]:
        return self.route(rule, "POST", **options)

    def put(self, rule: str, **options: Any) -> Callable[[Any], Any]:
        return self.route(rule, "PUT", **options)

    def delete(self, rule: str, **options: Any) -> Callable[[Any], Any]:
        return self.route(rule, "DELETE", **options)


class App(Router):
    """Routers included, exception handlers, and `resolve(event)` → the payload-v2 response."""

    def __init__(self) -> None:
        super().__init__()
        self._handlers: dict[type[BaseException], Callable[[Any], Response[Any]]] = {}
        self._request: Request | None = None

    def include_router(self, router: Router) -> None:
        self.routes.extend(router.routes)

    def exception_handler(self, kind: type[BaseException]) -> Callable[[Any], Any]:
        def register(func: Callable[[Any], Response[Any]]) -> Callable[[Any], Response[Any]]:
            self._handlers[kind] = func
            return func

        return register

    def not_found(self, func: Callable[[Any], Response[Any]]) -> Callable[[Any], Response[Any]]:
        self._handlers[NotFoundError] = func
        return func

    @property
    def current_event(self) -> Request:
        assert self._request is not None, "no request is being resolved"
        return self._request

    def resolve(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        self._request = request = Request.from_event(event)
        try:
            response = self._dispatch(request)
        except BaseException as exc:
            handler = next(
                (self._handlers[k] for k in type(exc).__mro__ if k in self._handlers), None
            )
            if handler is None:
                raise
            response = handler(exc)
        return response.to_event()

    def _dispatch(self, request: Request) -> Response[Any]:
        for route in self.routes:
            match = route.pattern.match(request.path)
            if match is not None and route.method == request.method:
                result = route.func(**route.arguments(request, match.groupdict()))
                return result if isinstance(result, Response) else Response(200, body=result)
        raise NotFoundError(request.path)
