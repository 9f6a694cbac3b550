"""`tandem demo` (`make demo`): the sample documents through all three entry paths, locally.

- api:  samples/api/*  -> inline POST /v1/jobs (one job per file)
- s3:   samples/s3/*   -> put_object into inbox/demo/ (the S3 -> EventBridge -> ingest path)
- sqs:  samples/sqs/*  -> object under staging/ + an SQS message {"job_id", "s3_uri"}
- search: samples/search/corpus.jsonl -> one more inline job; then the first labelled query of
  samples/search/queries.jsonl through POST /v1/search must find its document first

Every input document must end up in a result (the vector shards) or in a failure list
(failures.jsonl / the job's error); samples/expected_failures.json names the bad ones.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import click
from tandem_common.contracts import JobPaths, s3_job_id, s3_revision
from tandem_common.text.decoding import parse_input

from tandem.client import TandemClient
from tandem.console import print_job, print_search
from tandem.submission import documents_from_file


def expected_ids(path: Path) -> list[str]:
    """The document ids preprocess will report for this file: its documents and rejects, by
    the pipeline's own input rules."""
    parsed = parse_input(path.name, path.read_bytes())
    return [d.id for d in parsed.documents] + [r.id for r in parsed.rejected]


def demo_search(api: TandemClient, labelled: dict[str, str]) -> list[str]:
    """One labelled query through POST /v1/search, printed; a problem unless its document
    comes first."""
    query, expected = labelled["query"], labelled["document"]
    click.echo(f'search "{query}" (POST /v1/search, top 3):')
    results = api.search(query, top_k=3)["results"]
    print_search({"results": results})
    if not results or results[0]["document_id"] != expected:
        return [f"search {query!r} did not find {expected} first"]
    click.echo(f"search OK: found {expected} first")
    return []


def _listing(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj for page in pages for obj in page.get("Contents", [])]


def run_demo(samples: Path, out: Path, timeout: float = 600.0, template: str | None = None) -> int:
    from tandem.local.cloud import LocalCloud

    expected_fail = json.loads((samples / "expected_failures.json").read_text())
    t_start = time.monotonic()
    click.echo("starting the local cloud...")
    with LocalCloud(template=template) if template else LocalCloud() as cloud:
        t_up = time.monotonic()
        click.echo(
            f"local cloud up in {t_up - t_start:.1f}s (API {cloud.api_url}, logs {cloud.log_dir})"
        )
        api = TandemClient(cloud.api_url)
        s3 = cloud.client("s3")
        sqs = cloud.client("sqs")
        # job id -> (path name, [(file, [doc ids])])
        jobs: dict[str, tuple[str, list[tuple[str, list[str]]]]] = {}

        for f in sorted((samples / "api").glob("*")):
            docs = documents_from_file(f)
            if docs is None:
                raise click.ClickException(
                    f"{f} cannot go inline; move it to samples/s3 or samples/sqs"
                )
            body = api.create_job(documents=docs)
            jobs[body["job_id"]] = ("api", [(f"api/{f.name}", [d["id"] for d in docs])])

        for f in sorted((samples / "s3").glob("*")):
            key = f"inbox/demo/{f.name}"
            put = s3.put_object(Bucket=cloud.bucket, Key=key, Body=f.read_bytes())
            rev = s3_revision(put.get("VersionId"), put["ETag"])
            jobs[s3_job_id(cloud.bucket, key, rev)] = ("s3", [(f"s3/{f.name}", expected_ids(f))])

        for f in sorted((samples / "sqs").glob("*")):
            key = f"staging/sqs/{f.name}"
            s3.put_object(Bucket=cloud.bucket, Key=key, Body=f.read_bytes())
            job_id = str(uuid.uuid4())
            sqs.send_message(
                QueueUrl=cloud.queue_url,
                MessageBody=json.dumps({"job_id": job_id, "s3_uri": f"s3://{cloud.bucket}/{key}"}),
            )
            jobs[job_id] = ("sqs", [(f"sqs/{f.name}", expected_ids(f))])

        corpus = samples / "search" / "corpus.jsonl"
        if corpus.is_file():
            docs = documents_from_file(corpus) or []
            body = api.create_job(documents=docs)
            jobs[body["job_id"]] = ("search", [("search/corpus.jsonl", [d["id"] for d in docs])])
        click.echo(f"submitted {len(jobs)} jobs; waiting...")

        with click.progressbar(length=len(jobs), label="jobs") as bar:  # type: ignore[var-annotated]
            views = cloud.jobs.wait_all(jobs, timeout, 1.0, lambda _id, _job: bar.update(1))
        wall = time.monotonic() - t_up

        problems: list[str] = []
        per_path: dict[str, dict[str, int]] = {}
        out.mkdir(parents=True, exist_ok=True)
        failures_seen: list[tuple[str, str, str]] = []
        for jid, (path, files) in jobs.items():
            stats = per_path.setdefault(
                path, {"jobs": 0, "documents": 0, "chunks": 0, "vectors": 0, "failed_docs": 0}
            )
            stats["jobs"] += 1
            view = views.get(jid)
            all_ids = [(fname, i) for fname, ids in files for i in ids]
            stats["documents"] += len(all_ids)
            if view is None:
                problems.append(f"{path} job {jid} ({files[0][0]}) not terminal")
                continue
            prefix = f"jobs/{jid}/"
            vectors = cloud.jobs.result_rows(jid)
            fails = cloud.jobs.result_file(jid, JobPaths.result_failures)
            job_dir = out / path / jid
            job_dir.mkdir(parents=True, exist_ok=True)
            for key in [k["Key"] for k in _listing(s3, cloud.bucket, prefix + "result/")]:
                target = job_dir / key.removeprefix(prefix + "result/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket=cloud.bucket, Key=key)["Body"].read())
            stats["chunks"] += int((view.get("counts") or {}).get("chunks", 0))
            stats["vectors"] += len(vectors)
            embedded_docs = {v["document_id"] for v in vectors}
            failed = {f["id"]: f.get("reason", "") for f in fails}
            failed.update(
                {f["id"]: f.get("reason", "") for f in view.get("failed_documents") or []}
            )
            job_error = (view.get("error") or {}).get("message")
            for fname, doc_id in all_ids:
                expected_bad = doc_id in expected_fail.get(fname, [])
                if doc_id in failed or (view["status"] == "FAILED" and doc_id not in embedded_docs):
                    reason = failed.get(doc_id) or f"job failed: {job_error}"
                    stats["failed_docs"] += 1
                    failures_seen.append((fname, doc_id, reason))
                    if not expected_bad:
                        problems.append(f"good document {fname}#{doc_id} failed: {reason}")
                elif doc_id in embedded_docs:
                    if expected_bad:
                        problems.append(f"bad document {fname}#{doc_id} was embedded")
                else:
                    problems.append(
                        f"document {fname}#{doc_id} unaccounted for (job {jid} {view['status']})"
                    )

        click.echo("")
        click.echo(
            f"{'path':<5} {'jobs':>5} {'docs':>6} {'chunks':>7} {'vectors':>8} {'failed docs':>12}"
        )
        for path in ("api", "s3", "sqs", "search"):
            s = per_path.get(path, {})
            click.echo(
                f"{path:<5} {s.get('jobs', 0):>5} {s.get('documents', 0):>6} {s.get('chunks', 0):>7} "
                f"{s.get('vectors', 0):>8} {s.get('failed_docs', 0):>12}"
            )
        click.echo("failed documents (with reasons):")
        for fname, doc_id, reason in failures_seen:
            click.echo(f"  {fname}#{doc_id}: {reason}")
        dlq = sqs.get_queue_attributes(
            QueueUrl=cloud.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        click.echo(f"DLQ messages: {dlq['Attributes']['ApproximateNumberOfMessages']}")
        click.echo(f"wall time after the cloud was up: {wall:.1f}s (startup {t_up - t_start:.1f}s)")
        click.echo(
            f"results: s3://{cloud.bucket}/jobs/<job_id>/result/ ; local copy: {out.resolve()}/<path>/<job_id>/"
        )
        for jid, view in views.items():
            if view["status"] != "SUCCEEDED":
                print_job({**view, "job_id": jid})
        queries = samples / "search" / "queries.jsonl"
        if queries.is_file():
            problems += demo_search(api, json.loads(queries.read_text().splitlines()[0]))
        if problems:
            click.echo("PROBLEMS:")
            for p in problems:
                click.echo(f"  {p}")
            return 1
        click.echo("demo OK: every document is accounted for")
        return 0
