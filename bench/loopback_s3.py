"""A minimal S3 stand-in on 127.0.0.1 for the GPU check, where moto is not installed.

Path-style only (botocore uses path style for an IP endpoint): PUT /bucket (create), PUT and
GET /bucket/key, HEAD. Objects live in a dict. It speaks just enough of the protocol for boto3's
put_object and get_object; it is a benchmark fixture, not an S3.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: dict[str, bytes]
    buckets: set[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _path(self) -> tuple[str, str]:
        path = unquote(urlparse(self.path).path).lstrip("/")
        bucket, _, key = path.partition("/")
        return bucket, key

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(length)
        if "aws-chunked" in self.headers.get("Content-Encoding", ""):
            data = _decode_aws_chunked(data)
        return data

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_PUT(self) -> None:
        bucket, key = self._path()
        data = self._body()
        if not key:
            self.buckets.add(bucket)
            self._reply(200)
            return
        self.store[f"{bucket}/{key}"] = data
        self._reply(200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    def do_GET(self) -> None:
        bucket, key = self._path()
        data = self.store.get(f"{bucket}/{key}")
        if data is None:
            code = "NoSuchKey" if bucket in self.buckets else "NoSuchBucket"
            error = f"<Error><Code>{code}</Code><Message>not found</Message></Error>".encode()
            self._reply(404, error, {"Content-Type": "application/xml"})
            return
        etag = f'"{hashlib.md5(data).hexdigest()}"'
        self._reply(200, data, {"ETag": etag, "Content-Type": "application/octet-stream"})

    do_HEAD = do_GET


def _decode_aws_chunked(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        line_end = data.index(b"\r\n", pos)
        size = int(data[pos:line_end].split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            return bytes(out)
        out += data[pos : pos + size]
        pos += size + 2


class LoopbackS3:
    def __init__(self, port: int = 0) -> None:
        handler = type("Handler", (_Handler,), {"store": {}, "buckets": set()})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
