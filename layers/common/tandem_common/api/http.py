"""A small router for API Gateway HTTP API events (payload v2): routes, parameters validated with
msgspec, one `Response` type.

Why not Powertools' `APIGatewayHttpResolver`: importing any module of
`aws_lambda_powertools.event_handler` runs that package's `__init__`, which imports every resolver
Powertools has (AppSync, Bedrock agents, VPC Lattice, ...), asyncio and every event data class.
That import alone took more of the api's cold start than its whole budget over `import boto3`
(docs/BENCHMARKS.md, "Lambda handlers"). The routes keep Powertools' shape:
`@router.get(path, summary=..., responses=...)`, and parameters declared as
`Annotated[T, Body()]`, `Path(...)`, `Query(...)`, `Header(alias=...)` with constraints named as
`msgspec.Meta` names them (`ge`, `le`, `min_length`, `max_length`, `pattern`). `openapi.py`
writes the OpenAPI document from the same routes (`make openapi`); the api serves it as a file.

Why msgspec, not pydantic: the same cold start. Importing pydantic costs a handler about a third
of `import boto3`, msgspec a small fraction of that (the models are msgspec Structs as well:
`tandem_common.models`). A route's path, query and header parameters are checked together by one
Struct built for the route on its first request (strings become ints where the route says int);
a body parameter by its type's own `model_validate`.

Validation keeps Powertools' error shapes: a body that is not JSON is a `json_invalid` error,
every other problem a pydantic-style `{"type", "loc", "msg"}` dict whose `loc` starts with where
it was (`body`, `path`, `query`, `header`); all of them are raised together as one
`RequestValidationError`. msgspec reports the first problem of what it checks: one for the
parameters and one for each body at most.
"""

from __future__ import annotations

import base64
import functools
import inspect
import json
import operator
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Annotated, Any, Generic, TypeVar, Union

import msgspec

from tandem_common.models import Model, validation_errors

APPLICATION_JSON = "application/json"
TEXT_HTML = "text/html"
# Powertools' rule for a path parameter: one segment of anything but a slash
_SEGMENT = r"[\w\-._~()'!*:@,;=+&$%<> \[\]{}|^]+"
_PARAM = re.compile(r"<(\w+)>")
T = TypeVar("T")


class Param:
    """Where a route parameter comes from; keyword arguments are `msgspec.Meta` constraints
    (`ge`, `le`, `min_length`, `max_length`, `pattern`, `description`, ...)."""

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
    """The request's parameters or body are invalid: `errors()`, as pydantic-style dicts
    (`type`, `loc`, `msg`)."""

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
    _struct: type[msgspec.Struct] | None = field(default=None, init=False)

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

    def struct(self) -> type[msgspec.Struct]:
        """The route's path, query and header parameters as one Struct (fields named as the
        request names them: a header's alias), built on its first request."""
        if self._struct is None:
            fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
            for name, (marker, kind, default) in self.params.items():
                if marker.where == "body":
                    continue
                spec = constrained(kind, marker.constraints)
                options: dict[str, Any] = {} if default is ... else {"default": default}
                if marker.alias:
                    options["name"] = marker.alias
                fields.append((name, spec, msgspec.field(**options)) if options else (name, spec))
            self._struct = msgspec.defstruct(f"{self.func.__name__}_request", fields, kw_only=True)
        return self._struct

    def arguments(self, request: Request, path_params: dict[str, str]) -> dict[str, Any]:
        """The route function's keyword arguments, validated; RequestValidationError if not."""
        data: dict[str, Any] = {}
        where_of: dict[str, str] = {}
        bodies: dict[str, tuple[Param, Any, Any]] = {}
        for name, (marker, kind, default) in self.params.items():
            if marker.where == "body":
                bodies[name] = (marker, kind, default)
                continue
            key = marker.alias or name
            where_of[key] = marker.where
            source = {"path": path_params, "query": request.query, "header": request.headers}
            value = source[marker.where].get(key.lower() if marker.where == "header" else key)
            if value is not None:
                data[key] = value
        errors: list[dict[str, Any]] = []
        args: dict[str, Any] = {}
        if len(bodies) < len(self.params):
            try:
                parsed = msgspec.convert(data, self.struct(), strict=False)
            except msgspec.ValidationError as exc:
                for error in validation_errors(exc):
                    loc = tuple(error["loc"])
                    where = where_of.get(str(loc[0]), "query") if loc else "query"
                    errors.append({**error, "loc": (where, *loc)})
            else:
                args = {n: getattr(parsed, n) for n in self.params if n not in bodies}
        body = _json_body(request.body) if bodies else None
        for name, (marker, kind, default) in bodies.items():
            if body is None and default is not ...:
                args[name] = default
                continue
            try:
                args[name] = _validate_body(body, kind, marker.constraints)
            except msgspec.ValidationError as exc:
                errors.extend(
                    {**error, "loc": ("body", *error["loc"])} for error in validation_errors(exc)
                )
        if errors:
            raise RequestValidationError(errors)
        return args


def constrained(kind: Any, constraints: dict[str, Any]) -> Any:
    """`kind` with `msgspec.Meta(**constraints)`; on an optional type (`str | None`) the
    constraints go on the types other than None (msgspec sets none on a union)."""
    if not constraints:
        return kind
    if typing.get_origin(kind) in (Union, UnionType):
        members = [
            m if m is NoneType else Annotated[m, msgspec.Meta(**constraints)]
            for m in typing.get_args(kind)
        ]
        return functools.reduce(operator.or_, members)
    return Annotated[kind, msgspec.Meta(**constraints)]


def _validate_body(body: Any, kind: Any, constraints: dict[str, Any]) -> Any:
    """A body by its model's own `model_validate` (EmbeddingsRequest checks `input` its own way),
    any other type by msgspec."""
    if isinstance(kind, type) and issubclass(kind, Model) and not constraints:
        model: type[Model] = kind
        return model.model_validate(body)
    return msgspec.convert(body, constrained(kind, constraints), strict=False)


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
