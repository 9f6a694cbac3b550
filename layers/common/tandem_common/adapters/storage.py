"""S3 access for the data bucket: URIs, JSON/JSONL, .npy, presigned URLs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

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

    def exists(self, uri: str) -> bool:
        bucket, key = parse_s3_uri(uri)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if aws.error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

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
