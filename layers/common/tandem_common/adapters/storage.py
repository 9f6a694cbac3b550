"""S3 access for the data bucket: JSON/JSONL, streaming reads and writes, presigned URLs.

Big inputs and outputs never sit in memory whole: `iter_lines` streams an object line by line,
`JsonlUpload` spools lines to a temporary file and uploads it (multipart when large), and
`PutPool` runs many small PUTs on a bounded thread pool.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import IO, Any, cast

from tandem_common.adapters import aws
from tandem_common.contracts import parse_s3_uri, utf8_encodable


class Storage:
    """Thin typed wrapper over the S3 client (injectable)."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.s3()

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def get_bytes_if_exists(self, uri: str) -> bytes | None:
        try:
            return self.get_bytes(uri)
        except Exception as exc:
            if aws.error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise

    def put_bytes(self, uri: str, data: bytes, content_type: str) -> None:
        bucket, key = parse_s3_uri(uri)
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def put_json(self, uri: str, value: Any) -> None:
        self.put_bytes(uri, _json_line(value).encode(), "application/json")

    def get_json(self, uri: str) -> Any:
        return json.loads(self.get_bytes(uri))

    def put_jsonl(self, uri: str, rows: Iterable[Any]) -> None:
        self.put_bytes(uri, encode_jsonl(rows), "application/x-ndjson")

    def get_jsonl(self, uri: str) -> list[Any]:
        return list(iter_jsonl(self.get_bytes(uri)))

    def iter_lines(self, uri: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The object's lines (split on b"\\n" only, without it), streamed from S3."""
        bucket, key = parse_s3_uri(uri)
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        tail = b""
        for chunk in body.iter_chunks(chunk_size):
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            yield from lines
        if tail:
            yield tail

    def iter_jsonl(self, uri: str) -> Iterator[Any]:
        """The object's JSON lines, streamed (blank lines skipped)."""
        for line in self.iter_lines(uri):
            if line.strip():
                yield json.loads(line)

    def get_range(self, uri: str, first: int, last: int) -> bytes:
        """Bytes first..last (inclusive) of the object."""
        bucket, key = parse_s3_uri(uri)
        out = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}")
        body: bytes = out["Body"].read()
        return body

    def list_keys(self, prefix_uri: str) -> Iterator[str]:
        """Every key under `s3://bucket/prefix`."""
        bucket, prefix = parse_s3_uri(prefix_uri)
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            for obj in page.get("Contents", []):
                yield str(obj["Key"])

    def delete(self, uri: str) -> None:
        bucket, key = parse_s3_uri(uri)
        self.client.delete_object(Bucket=bucket, Key=key)

    def upload_file(self, uri: str, file: IO[bytes], content_type: str) -> None:
        """Upload a (spooled) file from its current position; multipart when it is large."""
        bucket, key = parse_s3_uri(uri)
        self.client.upload_fileobj(file, bucket, key, ExtraArgs={"ContentType": content_type})

    def exists(self, uri: str) -> bool:
        return self.size(uri) is not None

    def size(self, uri: str) -> int | None:
        """The object's size in bytes (a HEAD), or None when there is no such object."""
        head = self._head(uri)
        return None if head is None else int(head["ContentLength"])

    def modified_at(self, uri: str) -> float | None:
        """The object's LastModified (epoch seconds), or None when it does not exist."""
        head = self._head(uri)
        return None if head is None else float(head["LastModified"].timestamp())

    def _head(self, uri: str) -> dict[str, Any] | None:
        bucket, key = parse_s3_uri(uri)
        try:
            return cast(dict[str, Any], self.client.head_object(Bucket=bucket, Key=key))
        except Exception as exc:
            if aws.error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise

    def presign_get(self, uri: str, expires_in: int = 3600) -> str:
        bucket, key = parse_s3_uri(uri)
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
        )
        return url

    def presign_put(self, uri: str, content_type: str, expires_in: int = 900) -> str:
        bucket, key = parse_s3_uri(uri)
        url: str = self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires_in,
        )
        return url


def _json_line(value: Any) -> str:
    line = json.dumps(value, ensure_ascii=False)
    # Lone surrogates (legal in JSON escapes, not in UTF-8) travel escaped, so the reader sees
    # the same string and rejects that document with a reason instead of the write failing.
    return line if utf8_encodable(line) else json.dumps(value)


def encode_jsonl(rows: Iterable[Any]) -> bytes:
    return "".join(_json_line(r) + "\n" for r in rows).encode()


def iter_jsonl(data: bytes) -> Iterator[Any]:
    for line in data.splitlines():
        if line.strip():
            yield json.loads(line)


class JsonlUpload:
    """Write JSON lines to `uri` without holding them in memory: lines go to a temporary file
    (in memory up to `spool_bytes`, then on disk) that is uploaded when the block ends."""

    def __init__(self, storage: Storage, uri: str, spool_bytes: int = 8 << 20) -> None:
        self.storage = storage
        self.uri = uri
        self.rows = 0
        self._file = tempfile.SpooledTemporaryFile(max_size=spool_bytes)  # noqa: SIM115

    def write(self, row: Any) -> None:
        self._file.write((_json_line(row) + "\n").encode())
        self.rows += 1

    def write_line(self, line: bytes) -> None:
        """A line already serialised (without its newline)."""
        self._file.write(line + b"\n")
        self.rows += 1

    def __enter__(self) -> JsonlUpload:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if kind is None:
                self._file.seek(0)
                self.storage.upload_file(self.uri, self._file, "application/x-ndjson")
        finally:
            self._file.close()


class PutPool:
    """Many small PUTs on a bounded thread pool: at most `window` uploads are pending at once
    (so memory stays bounded), and the first failure is raised by `put` or `wait`."""

    def __init__(self, storage: Storage, workers: int = 16, window: int = 64) -> None:
        self.storage = storage
        self.window = window
        self.count = 0
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-put")
        self._pending: list[Future[None]] = []

    def put(self, uri: str, data: bytes, content_type: str) -> None:
        self._pending.append(self._pool.submit(self.storage.put_bytes, uri, data, content_type))
        self.count += 1
        if len(self._pending) >= self.window:
            self._drain(self.window // 2)

    def _drain(self, keep: int) -> None:
        while len(self._pending) > keep:
            self._pending.pop(0).result()

    def wait(self) -> None:
        """Block until every PUT is done (raising the first error)."""
        try:
            self._drain(0)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PutPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        if kind is None:
            self.wait()
        else:
            self._pool.shutdown(wait=True, cancel_futures=True)
