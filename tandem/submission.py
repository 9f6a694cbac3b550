"""Turning files into jobs: which go inline (`POST /v1/jobs`) and which by upload.

A small file whose every document parses goes inline, grouped with others up to 1 MB per job.
Anything larger, or with a document the pipeline would reject, goes through `POST /v1/uploads`
and a presigned PUT into `inbox/`, so the pipeline itself reports each bad document with its
reason. The upload's job id is predicted from the PUT's answer with the same rule ingest uses
(`tandem_common.contracts.s3_job_id`), so no second job is made and no list route is needed.
Input formats are the pipeline's own (`tandem_common.text.decoding.parse_input`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tandem_common.contracts import parse_s3_uri, s3_job_id, s3_revision
from tandem_common.text.decoding import parse_input

from tandem.client import TandemClient

INLINE_LIMIT = 1024 * 1024
INPUT_SUFFIXES = {".txt", ".md", ".json", ".jsonl"}  # what a folder contributes


class NoSuchInput(FileNotFoundError):
    pass


def collect_files(paths: tuple[str, ...] | list[str]) -> list[Path]:
    """The files named, and the text/JSON files under the folders named (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(
                sorted(
                    f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES
                )
            )
        elif p.is_file():
            out.append(p)
        else:
            raise NoSuchInput(f"no such file or folder: {p}")
    return out


def documents_from_file(path: Path) -> list[dict[str, Any]] | None:
    """The file's documents for an inline job, or None when it must go by upload: it has a
    document the pipeline would reject (the upload path lists it with its reason)."""
    parsed = parse_input(path.name, path.read_bytes())
    if parsed.rejected or not parsed.documents:
        return None
    return [{"id": d.id, "text": d.text} for d in parsed.documents]


def predicted_job_id(ticket_uri: str, version_id: str | None, etag: str) -> str:
    """The job id ingest gives the object an upload created (from the PUT's answer)."""
    bucket, key = parse_s3_uri(ticket_uri)
    return s3_job_id(bucket, key, s3_revision(version_id, etag))


def upload(client: TandemClient, path: Path) -> str:
    """POST /v1/uploads + the presigned PUT; returns the job id the upload's S3 event makes."""
    ticket = client.create_upload(path.name)
    answer = client.put_upload(ticket, path.read_bytes())
    headers = {k.lower(): v for k, v in answer.headers.items()}
    return predicted_job_id(ticket["s3_uri"], headers.get("x-amz-version-id"), headers["etag"])


def submit_files(client: TandemClient, files: list[Path], batch_docs: int = 200) -> list[str]:
    """Small valid files go inline (grouped), everything else by upload. Returns job ids."""
    job_ids: list[str] = []
    inline: list[dict[str, Any]] = []
    inline_bytes = 0

    def flush() -> None:
        nonlocal inline, inline_bytes
        if inline:
            job_ids.append(client.create_job(documents=inline)["job_id"])
        inline, inline_bytes = [], 0

    for f in files:
        size = f.stat().st_size
        docs = documents_from_file(f) if size <= INLINE_LIMIT else None
        if docs is None:
            job_ids.append(upload(client, f))
            continue
        if inline_bytes + size > INLINE_LIMIT or len(inline) + len(docs) > batch_docs:
            flush()
        inline.extend(docs)
        inline_bytes += size
    flush()
    return job_ids
