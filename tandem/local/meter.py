"""Counting the requests that reach the local moto server, by AWS service and HTTP method.

The service comes from the request's SigV4 credential scope (`.../<service>/aws4_request`, in
the Authorization header or, for presigned URLs, the query string), so S3 GETs and PUTs are
told apart from DynamoDB and SQS calls. `bench/scale_bench.py` reads it; the state machine's own
ItemReader/ResultWriter calls run in-process and do not pass through the server.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections import Counter
from typing import Any

_SCOPE = re.compile(r"/(?P<service>[a-z0-9-]+)/aws4_request")


def service_of(environ: dict[str, Any]) -> str:
    for source in (
        environ.get("HTTP_AUTHORIZATION", ""),
        urllib.parse.unquote(environ.get("QUERY_STRING", "")),
    ):
        match = _SCOPE.search(source)
        if match:
            return match["service"]
    return "unknown"


class RequestMeter:
    """WSGI middleware: counts (service, method) of every request, then passes it on."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        key = (service_of(environ), str(environ.get("REQUEST_METHOD", "")))
        with self._lock:
            self.counts[key] += 1
        return self.app(environ, start_response)

    def snapshot(self) -> dict[str, int]:
        """`{"s3 GET": n, "dynamodb POST": m, ...}`"""
        with self._lock:
            return {f"{s} {m}": n for (s, m), n in sorted(self.counts.items())}

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
