"""One background HTTP server for the local services (the Lambda Invoke API, the HTTP API).

`BackgroundHttpServer(handle, host, port, name)` serves every request on its own thread
(HTTP/1.1, keep-alive) by calling `handle(request_handler)`; `start()` returns at once, `close()`
stops it. Request logs go to the module logger at DEBUG.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

Handle = Callable[[BaseHTTPRequestHandler], None]
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


def reachable_host(bind: str) -> str:
    """The address this machine's own clients use for a service bound to `bind` (0.0.0.0 binds
    every interface, loopback included)."""
    return "127.0.0.1" if bind in ("0.0.0.0", "", "::") else bind  # noqa: S104 - a comparison


class BackgroundHttpServer:
    def __init__(self, handle: Handle, host: str = "127.0.0.1", port: int = 0, name: str = "http"):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(f"{name}: " + format, *args)

        def _any(self: BaseHTTPRequestHandler) -> None:
            handle(self)

        for method in METHODS:
            setattr(Handler, f"do_{method}", _any)
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host = host
        self.port = int(self.server.server_address[1])
        self.url = f"http://{reachable_host(host)}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name=name, daemon=True)

    def start(self) -> BackgroundHttpServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
