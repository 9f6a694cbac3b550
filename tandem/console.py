"""What the CLI prints: job summaries, progress bars, the local cloud's addresses."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
from tandem_common.contracts import TERMINAL_STATUSES


def print_job(view: dict[str, Any]) -> None:
    """One job (a `GET /v1/jobs/{id}` view or a jobs-table item) in a few lines."""
    c = view.get("counts") or {}
    click.echo(
        f"job {view['job_id']}: {view['status']} (source {view.get('source')}) "
        f"documents={c.get('documents')} chunks={c.get('chunks')} embedded={c.get('embedded')} failed={c.get('failed')}"
    )
    for f in view.get("failed_documents") or []:
        click.echo(f"  failed document {f.get('id')}: {f.get('reason')}")
    if view.get("error"):
        click.echo(f"  error: {view['error'].get('code')}: {view['error'].get('message')}")
    if view.get("manifest_uri"):
        click.echo(f"  results: {view['manifest_uri'].rsplit('/', 1)[0]}/")


def print_search(body: dict[str, Any], width: int = 160) -> None:
    """`POST /v1/search`'s results: rank, score, document#chunk, the start of the text."""
    results = body.get("results") or []
    if not results:
        click.echo("no results")
    for rank, hit in enumerate(results, 1):
        text = " ".join(str(hit.get("text", "")).split())
        if len(text) > width:
            text = text[: width - 3] + "..."
        click.echo(
            f"{rank:>2}. {hit['score']:.3f}  {hit['document_id']}#{hit['chunk_index']}  {text}"
        )


def print_retry(original: str, body: dict[str, Any]) -> None:
    click.echo(
        f"retry job {body['job_id']} of {original}: {body['documents']} document(s), {body['status']}"
    )
    for s in body.get("skipped") or []:
        click.echo(f"  not retried {s.get('id')}: {s.get('reason')}")
    more = int(body.get("skipped_count") or 0) - len(body.get("skipped") or [])
    if more > 0:
        click.echo(f"  ... and {more} more not retried")


class JobProgress:
    """A progress bar over the batches of some jobs, fed job views: each job's `progress`
    (batches done of its total) while its Map runs, all of them once it has ended."""

    def __init__(self, label: str = "batches") -> None:
        self._bar: Any = click.progressbar(length=1, label=label, show_pos=True, file=sys.stderr)
        self._shown = 0

    def __enter__(self) -> Callable[[dict[str, dict[str, Any]]], None]:
        self._bar.__enter__()
        return self.update

    def __exit__(self, *exc: Any) -> None:
        self._bar.__exit__(*exc)

    def update(self, views: dict[str, dict[str, Any]]) -> None:
        total = done = 0
        for view in views.values():
            progress = view.get("progress") or {}
            batches = int(progress.get("batches", 0))
            total += batches
            ended = view.get("status") in TERMINAL_STATUSES
            done += batches if ended else min(int(progress.get("batches_done", 0)), batches)
        self._bar.length = max(total, 1)
        if done > self._shown:
            self._bar.update(done - self._shown)
            self._shown = done


class ShardProgress:
    """A progress bar over a download's shards, fed `(done, total)`."""

    def __init__(self, label: str = "shards") -> None:
        self._bar: Any = click.progressbar(length=1, label=label, show_pos=True, file=sys.stderr)
        self._shown = 0

    def __enter__(self) -> Callable[[int, int], None]:
        self._bar.__enter__()
        return self.update

    def __exit__(self, *exc: Any) -> None:
        self._bar.__exit__(*exc)

    def update(self, done: int, total: int) -> None:
        self._bar.length = max(total, 1)
        self._bar.update(done - self._shown)
        self._shown = done


def report_jobs(job_ids: list[str], views: dict[str, dict[str, Any]]) -> bool:
    """Print each job; True when every job ended and none FAILED."""
    ok = True
    for job_id in job_ids:
        view = views.get(job_id)
        if not view:
            click.echo(f"job {job_id}: not found (yet)")
            ok = False
            continue
        print_job(view)
        ok &= view["status"] in TERMINAL_STATUSES and view["status"] != "FAILED"
    return ok
