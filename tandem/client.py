"""`TandemClient`: Tandem's HTTP API from Python (what the CLI and the demo use).

SigV4 signing for a deployed stack (IAM auth, service `execute-api`), errors as
`TandemApiError`, waiting for jobs, downloading results. The transport is injectable, so tests
can answer requests without a server.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tandem_common.contracts import TERMINAL_STATUSES

DEFAULT_API_URL = "http://127.0.0.1:3000"


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


# (method, url, body, headers, timeout) -> response; HTTP errors are responses, not exceptions.
Transport = Callable[[str, str, bytes | None, dict[str, str], float], HttpResponse]


def urllib_transport(
    method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
) -> HttpResponse:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return HttpResponse(r.status, dict(r.headers.items()), r.read())
    except urllib.error.HTTPError as e:
        return HttpResponse(e.code, dict(e.headers.items()), e.read())


class TandemApiError(Exception):
    """An error answer of the API: `{"error": {"code", "message"}}` with its status."""

    def __init__(self, status: int, code: str, message: str, what: str = "") -> None:
        super().__init__(f"{what + ' failed ' if what else ''}({status}): {code}: {message}")
        self.status, self.code, self.message = status, code, message


def _error_of(status: int, raw: bytes) -> tuple[str, str]:
    try:
        err = json.loads(raw).get("error") or {}
        return str(err.get("code", status)), str(err.get("message", ""))
    except (ValueError, AttributeError):
        return str(status), raw.decode(errors="replace")[:500]


class TandemClient:
    def __init__(
        self,
        base_url: str,
        *,
        sign: bool = False,
        region: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.sign = sign
        self.region = region
        self.transport = transport or urllib_transport

    @classmethod
    def for_stack(cls, stack: str) -> TandemClient:
        """The API of a deployed stack (its `ApiUrl` output), signing every request."""
        import boto3

        cfn = boto3.client("cloudformation")
        outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
        url = next((o["OutputValue"] for o in outputs if o["OutputKey"] == "ApiUrl"), None)
        if not url:
            raise TandemApiError(404, "no_api_url", f"stack {stack} has no ApiUrl output")
        return cls(url, sign=True, region=cfn.meta.region_name)

    @classmethod
    def from_options(cls, api: str | None, stack: str | None) -> TandemClient:
        if stack:
            return cls.for_stack(stack)
        return cls(api or os.environ.get("TANDEM_API_URL", DEFAULT_API_URL))

    # ------------------------------------------------------------------ raw requests
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> tuple[int, Any]:
        """(status, JSON body or None); errors are returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"content-type": "application/json", **(headers or {})}
        url = self.base + path
        if self.sign:
            hdrs = self._sigv4(method, url, data, hdrs)
        response = self.transport(method, url, data, hdrs, timeout)
        if response.status >= 400:
            code, message = _error_of(response.status, response.body)
            return response.status, {"error": {"code": code, "message": message}}
        return response.status, json.loads(response.body) if response.body else None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        what: str = "",
    ) -> Any:
        """The JSON body of a successful answer; raises `TandemApiError` for a 4xx/5xx."""
        status, out = self.request(method, path, body, headers)
        if status >= 400:
            err = out["error"]
            raise TandemApiError(status, err["code"], err["message"], what or f"{method} {path}")
        return out

    def _sigv4(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> dict[str, str]:
        import boto3
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        session = boto3.Session()
        creds = session.get_credentials()
        if creds is None:
            raise TandemApiError(401, "no_credentials", "no AWS credentials to sign with")
        req = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(
            creds.get_frozen_credentials(),
            "execute-api",
            self.region or session.region_name or "us-east-1",
        ).add_auth(req)
        return dict(req.headers.items())

    # ------------------------------------------------------------------ the API's routes
    def create_job(
        self,
        documents: list[dict[str, Any]] | None = None,
        source: str | None = None,
        options: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if documents is not None:
            body["documents"] = documents
        if source is not None:
            body["source"] = {"s3_uri": source}
        if options:
            body["options"] = options
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        result: dict[str, Any] = self.call("POST", "/v1/jobs", body, headers, "POST /v1/jobs")
        return result

    def get_job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/v1/jobs/{job_id}", what="GET job")
        return result

    def retry_job(self, job_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        path = f"/v1/jobs/{job_id}/retry"
        result: dict[str, Any] = self.call("POST", path, headers=headers, what="retry")
        return result

    def create_upload(
        self, filename: str, content_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        body = {"filename": filename, "content_type": content_type}
        result: dict[str, Any] = self.call("POST", "/v1/uploads", body, what="upload")
        return result

    def put_upload(self, ticket: dict[str, Any], data: bytes, timeout: float = 300) -> HttpResponse:
        """PUT `data` to an upload ticket's presigned URL (S3 answers, not the API)."""
        response = self.transport(
            "PUT", ticket["upload_url"], data, dict(ticket.get("headers") or {}), timeout
        )
        if response.status >= 300:
            raise TandemApiError(response.status, "upload_failed", response.body[:300].decode())
        return response

    def search(
        self,
        query: str,
        top_k: int = 10,
        document_ids: Iterable[str] = (),
        job_ids: Iterable[str] = (),
    ) -> dict[str, Any]:
        """`POST /v1/search`: the nearest indexed chunks, optionally only of these documents
        and/or jobs."""
        body: dict[str, Any] = {"query": query, "top_k": top_k}
        flt = {
            key: list(values)
            for key, values in (("document_id", document_ids), ("job_id", job_ids))
            if values
        }
        if flt:
            body["filter"] = flt
        result: dict[str, Any] = self.call("POST", "/v1/search", body, what="search")
        return result

    def delete_document(self, document_id: str) -> dict[str, Any]:
        """`DELETE /v1/documents/{id}` (the id percent-encoded, "/" included)."""
        path = "/v1/documents/" + urllib.parse.quote(document_id, safe="")
        result: dict[str, Any] = self.call("DELETE", path, what="delete")
        return result

    # ------------------------------------------------------------------ jobs over time
    def wait_for_jobs(
        self,
        job_ids: Iterable[str],
        timeout: float = 1800,
        interval: float = 1.0,
        on_update: Callable[[dict[str, dict[str, Any]]], None] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Poll `GET /v1/jobs/{id}` until every job is terminal or `timeout` passes; returns
        the last view of each job seen (a job never found is missing)."""
        pending = list(dict.fromkeys(job_ids))
        views: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while True:
            for job_id in pending:
                status, body = self.request("GET", f"/v1/jobs/{job_id}")
                if status == 200:
                    views[job_id] = body
            pending = [
                j for j in pending if views.get(j, {}).get("status") not in TERMINAL_STATUSES
            ]
            if on_update is not None:
                on_update(views)
            if not pending or time.monotonic() >= deadline:
                return views
            time.sleep(interval)

    def shards(self, job_id: str, page: int = 1000) -> Iterator[dict[str, Any]]:
        """Every result shard of a finished job, with presigned URLs (`GET .../shards`)."""
        start: int | None = 0
        while start is not None:
            body = self.call("GET", f"/v1/jobs/{job_id}/shards?start={start}&limit={page}")
            yield from body["shards"]
            start = body["next_start"]

    def _fetch(self, url: str, target: Path, what: str) -> bool:
        response = self.transport("GET", url, None, {}, 300)
        if response.status == 404:
            return False
        if response.status >= 300:
            raise TandemApiError(response.status, "download_failed", f"{what}: {url}")
        target.write_bytes(response.body)
        return True

    def download_results(
        self,
        view: dict[str, Any],
        out: Path,
        on_shard: Callable[[int, int], None] | None = None,
    ) -> list[Path]:
        """Fetch a finished job's result files (its presigned `downloads`) into `out`, and
        every shard into `out/shards/`; `on_shard(done, total)` after each shard."""
        out.mkdir(parents=True, exist_ok=True)
        names = {
            "manifest": "manifest.json",
            "documents": "documents.jsonl",
            "failures": "failures.jsonl",
            "shards": "shards.jsonl",
        }
        written = []
        for key, url in (view.get("downloads") or {}).items():
            target = out / names.get(key, key)
            if url and self._fetch(url, target, key):
                written.append(target)
        shards = list(self.shards(view["job_id"])) if view.get("downloads") else []
        if shards:
            (out / "shards").mkdir(exist_ok=True)
        for done, shard in enumerate(shards, start=1):
            for kind in ("vectors_jsonl", "vectors_npy"):
                suffix = "jsonl" if kind == "vectors_jsonl" else "npy"
                target = out / "shards" / f"vectors-{shard['index']:05d}.{suffix}"
                if self._fetch(shard[kind], target, f"shard {shard['index']}"):
                    written.append(target)
            if on_shard is not None:
                on_shard(done, len(shards))
        return written
