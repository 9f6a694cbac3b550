"""A local HTTP API (like `sam local start-api`): requests -> API Gateway payload v2 events.

Routes come from the template's `HttpApi` events (`Path`, `Method`); the most specific route
wins (exact path, then `{param}` paths, then greedy `{proxy+}`).  The function's v2 result
(`statusCode`, `headers`, `cookies`, `body`, `isBase64Encoded`) becomes the HTTP response; a
bare value is JSON-encoded with status 200, as API Gateway does for payload v2.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tandem.local.http_server import BackgroundHttpServer
from tandem.local.lambda_service import LambdaService
from tandem.local.template import FunctionSpec

log = logging.getLogger(__name__)

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "+json",
    "+xml",
)


@dataclass
class Route:
    method: str
    path: str
    function: str
    regex: re.Pattern[str]
    specificity: tuple[int, int]

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


def _compile(path: str) -> tuple[re.Pattern[str], tuple[int, int]]:
    out, params, greedy = "", 0, 0
    for seg in path.strip("/").split("/"):
        if not seg:
            continue
        m = re.fullmatch(r"\{([^}+]+)(\+?)\}", seg)
        if m and m.group(2):
            out += f"/(?P<{m.group(1)}>.+)"
            greedy += 1
        elif m:
            out += f"/(?P<{m.group(1)}>[^/]+)"
            params += 1
        else:
            out += "/" + re.escape(seg)
    return re.compile("^" + (out or "/") + "$"), (greedy, params)


def routes_from_functions(functions: dict[str, FunctionSpec]) -> list[Route]:
    routes = []
    for spec in functions.values():
        for ev in spec.events:
            if ev.type != "HttpApi":
                continue
            path = ev.properties.get("Path", "/{proxy+}")
            method = str(ev.properties.get("Method", "ANY")).upper()
            rx, spec_key = _compile(path)
            routes.append(Route(method if method != "*" else "ANY", path, spec.name, rx, spec_key))
    routes.sort(key=lambda r: (r.specificity, r.method == "ANY"))
    return routes


def _is_text(content_type: str) -> bool:
    ct = content_type.lower()
    return any(t in ct for t in _TEXT_TYPES)


class LocalHttpApi:
    def __init__(
        self, lambdas: LambdaService, routes: list[Route], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.lambdas = lambdas
        self.routes = routes
        self._http = BackgroundHttpServer(self._handle, host, port, name="http-api")
        self.port = self._http.port
        self.url = self._http.url

    def start(self) -> LocalHttpApi:
        self._http.start()
        return self

    def close(self) -> None:
        self._http.close()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for r in self.routes:
            if r.method not in ("ANY", method):
                continue
            m = r.regex.match(path)
            if m:
                return r, {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
        return None

    def build_event(
        self, h: BaseHTTPRequestHandler, route: Route, params: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        raw_path, _, raw_qs = h.path.partition("?")
        headers: dict[str, str] = {}
        for k, v in h.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]},{v}" if k in headers else v
        qs: dict[str, str] = {}
        for k, v in urllib.parse.parse_qsl(raw_qs, keep_blank_values=True):
            qs[k] = f"{qs[k]},{v}" if k in qs else v
        cookies = [c.strip() for c in headers.get("cookie", "").split(";") if c.strip()]
        now = datetime.now(UTC)
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_qs,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "domainName": headers.get("host", f"127.0.0.1:{self.port}"),
                "domainPrefix": "local",
                "http": {
                    "method": h.command,
                    "path": raw_path,
                    "protocol": h.request_version,
                    "sourceIp": h.client_address[0],
                    "userAgent": headers.get("user-agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": route.route_key,
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if qs:
            event["queryStringParameters"] = qs
        if params:
            event["pathParameters"] = params
        if body:
            text = None
            if _is_text(headers.get("content-type", "text/plain")):
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
            if text is None:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
            else:
                event["body"] = text
        return event

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = h.path.partition("?")[0]
        found = self.match(h.command, path)
        if found is None:
            self._reply(
                h, 404, {"content-type": "application/json"}, b'{"message":"Not Found"}', []
            )
            return
        route, params = found
        event = self.build_event(h, route, params, body)
        result = self.lambdas.invoke(route.function, event)
        if result.error_type:
            self._reply(
                h,
                500,
                {"content-type": "application/json"},
                b'{"message":"Internal Server Error"}',
                [],
            )
            return
        status, headers, out, cookies = self.to_http(result.payload)
        log.debug(
            "%s %s -> %s (%.0f ms)", h.command, path, status, 1000 * (time.monotonic() - started)
        )
        self._reply(h, status, headers, out, cookies)

    @staticmethod
    def to_http(payload: Any) -> tuple[int, dict[str, str], bytes, list[str]]:
        if isinstance(payload, dict) and "statusCode" in payload:
            headers = {str(k).lower(): str(v) for k, v in (payload.get("headers") or {}).items()}
            for k, vals in (payload.get("multiValueHeaders") or {}).items():
                headers[str(k).lower()] = ",".join(str(v) for v in vals)
            raw = payload.get("body")
            if raw is None:
                out = b""
            elif payload.get("isBase64Encoded"):
                out = base64.b64decode(raw)
            else:
                out = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
            return int(payload["statusCode"]), headers, out, list(payload.get("cookies") or [])
        return 200, {"content-type": "application/json"}, json.dumps(payload).encode(), []

    @staticmethod
    def _reply(
        h: BaseHTTPRequestHandler,
        status: int,
        headers: dict[str, str],
        body: bytes,
        cookies: list[str],
    ) -> None:
        h.send_response(status)
        for k, v in headers.items():
            if k not in ("content-length", "connection", "transfer-encoding"):
                h.send_header(k, v)
        for c in cookies:
            h.send_header("Set-Cookie", c)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("apigw-requestid", str(uuid.uuid4()))
        h.end_headers()
        if h.command != "HEAD" and body:
            h.wfile.write(body)
