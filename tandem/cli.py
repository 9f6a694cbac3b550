"""`tandem`: run the pipeline locally, submit documents, follow jobs, fetch results.

Large inputs (> 1 MB) go through `POST /v1/uploads` + a presigned PUT into `inbox/`; the job
that the upload creates has a deterministic id (CONTRACTS.md: `uuid5(NS, "s3:" + bucket/key +
"@" + version-id|etag)`), which we compute from the PUT's response headers, so no second job is
created and no list endpoint is needed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import click

# Must equal tandem_common.jobs.JOB_NAMESPACE (tested in tests/integration/local_cloud).
JOB_NAMESPACE = uuid.UUID("6b1f8a52-3c1e-4f0a-9d7e-2a4b5c6d7e8f")
INLINE_LIMIT = 1024 * 1024
TERMINAL = {"SUCCEEDED", "PARTIAL", "FAILED"}
INPUT_SUFFIXES = {".txt", ".md", ".json", ".jsonl"}


def s3_job_id(bucket: str, key: str, revision: str) -> str:
    return str(uuid.uuid5(JOB_NAMESPACE, f"s3:{bucket}/{key}@{revision}"))


# ---------------------------------------------------------------------- HTTP client
class ApiClient:
    def __init__(self, base_url: str, sign: bool = False, region: str | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.sign = sign
        self.region = region

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"content-type": "application/json", **(headers or {})}
        url = self.base + path
        if self.sign:
            hdrs = self._sigv4(method, url, data, hdrs)
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, {
                    "error": {"code": str(e.code), "message": raw.decode(errors="replace")}
                }

    def _sigv4(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> dict[str, str]:
        import boto3
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        session = boto3.Session()
        creds = session.get_credentials()
        if creds is None:
            raise click.ClickException("no AWS credentials to sign the request with")
        req = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(
            creds.get_frozen_credentials(),
            "execute-api",
            self.region or session.region_name or "us-east-1",
        ).add_auth(req)
        return dict(req.headers.items())


def api_from_options(api: str | None, stack: str | None) -> ApiClient:
    if stack:
        import boto3

        cfn = boto3.client("cloudformation")
        outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
        url = next((o["OutputValue"] for o in outputs if o["OutputKey"] == "ApiUrl"), None)
        if not url:
            raise click.ClickException(f"stack {stack} has no ApiUrl output")
        return ApiClient(url, sign=True, region=cfn.meta.region_name)
    return ApiClient(api or os.environ.get("TANDEM_API_URL", "http://127.0.0.1:3000"))


def _check(status: int, body: Any, what: str) -> Any:
    if status >= 400:
        err = (body or {}).get("error", {}) if isinstance(body, dict) else {}
        raise click.ClickException(
            f"{what} failed ({status}): {err.get('code')}: {err.get('message')}"
        )
    return body


def collect_files(paths: tuple[str, ...]) -> list[Path]:
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
            raise click.ClickException(f"no such file or folder: {p}")
    return out


def documents_from_file(path: Path) -> list[dict[str, Any]] | None:
    """Inline documents for a small, valid text file; None when the file must go by upload."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if suffix == ".json":
            doc = json.loads(text)
            return list(doc["documents"]) if isinstance(doc, dict) and "documents" in doc else None
    except (ValueError, KeyError, TypeError):
        return None
    return [{"id": path.name, "text": text}]


def upload(client: ApiClient, path: Path) -> str:
    """POST /v1/uploads + presigned PUT; returns the job id the upload's S3 event creates."""
    ticket = _check(
        *client.request(
            "POST",
            "/v1/uploads",
            {"filename": path.name, "content_type": "application/octet-stream"},
        ),
        "upload",
    )
    data = path.read_bytes()
    req = urllib.request.Request(
        ticket["upload_url"],
        data=data,
        method="PUT",
        headers=ticket.get("headers") or {},
    )
    with urllib.request.urlopen(req, timeout=300) as r:
        version = r.headers.get("x-amz-version-id")
        etag = (r.headers.get("ETag") or "").strip('"')
    bucket, key = ticket["s3_uri"][5:].split("/", 1)
    revision = version if version and version != "null" else etag
    return s3_job_id(bucket, key, revision)


def submit_files(client: ApiClient, files: list[Path], batch_docs: int = 200) -> list[str]:
    """Small valid files go inline (grouped), everything else by upload. Returns job ids."""
    job_ids: list[str] = []
    inline: list[dict[str, Any]] = []
    inline_bytes = 0

    def flush() -> None:
        nonlocal inline, inline_bytes
        if inline:
            body = _check(
                *client.request("POST", "/v1/jobs", {"documents": inline}), "POST /v1/jobs"
            )
            job_ids.append(body["job_id"])
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


def wait_jobs(
    client: ApiClient, job_ids: list[str], timeout: float = 1800, show: bool = True
) -> dict[str, Any]:
    views: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    with click.progressbar(  # type: ignore[var-annotated]
        length=1,
        label="embedding",
        show_pos=True,
        file=sys.stderr if show else open(os.devnull, "w"),
    ) as bar:
        done_shown = 0
        while time.monotonic() < deadline:
            for jid in job_ids:
                if views.get(jid, {}).get("status") in TERMINAL:
                    continue
                status, body = client.request("GET", f"/v1/jobs/{jid}")
                if status == 200:
                    views[jid] = body
            chunks = sum((v.get("counts") or {}).get("chunks", 0) for v in views.values()) or 1
            done = sum((v.get("counts") or {}).get("embedded", 0) for v in views.values())
            bar.length = max(chunks, 1)
            if done > done_shown:
                bar.update(done - done_shown)
                done_shown = done
            if len(views) == len(job_ids) and all(
                v.get("status") in TERMINAL for v in views.values()
            ):
                break
            time.sleep(1)
    return views


def print_job(view: dict[str, Any]) -> None:
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


def download_results(view: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    names = {
        "manifest": "manifest.json",
        "vectors_jsonl": "vectors.jsonl",
        "vectors_npy": "vectors.npy",
        "failures": "failures.jsonl",
    }
    written = []
    for key, url in (view.get("downloads") or {}).items():
        if not url:
            continue
        target = out / names.get(key, key)
        try:
            with urllib.request.urlopen(url, timeout=300) as r:
                target.write_bytes(r.read())
            written.append(target)
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
    return written


# ---------------------------------------------------------------------- commands
api_option = click.option(
    "--api",
    "api",
    default=None,
    help="API base URL (default $TANDEM_API_URL or http://127.0.0.1:3000)",
)
stack_option = click.option(
    "--stack",
    default=None,
    help="deployed stack name: read ApiUrl from its outputs, sign with SigV4",
)


@click.group()
def main() -> None:
    """Tandem: serverless AI inference pipeline."""


@main.group()
def local() -> None:
    """The local cloud (moto + local Lambda + the real endpoint), no Docker, no AWS account."""


@local.command("up")
@click.option("--port", default=3000, show_default=True, help="HTTP API port")
@click.option(
    "--lambda-port",
    default=3001,
    show_default=True,
    help="Lambda Invoke API port (like `sam local start-lambda`)",
)
def local_up(port: int, lambda_port: int) -> None:
    """Start the local cloud and serve until Ctrl-C."""
    from tandem.local.cloud import LocalCloud

    click.echo("starting the local cloud (the endpoint loads the model; this can take a while)...")
    stop = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True

    with LocalCloud(api_port=port, lambda_port=lambda_port) as cloud:
        click.echo(f"API: {cloud.api_url}")
        click.echo(
            f"Lambda service: {cloud.lambda_url}  (aws lambda invoke --endpoint-url {cloud.lambda_url} ...)"
        )
        click.echo(f"moto (S3, DynamoDB, SQS, Step Functions): {cloud.moto_url}")
        click.echo(f"endpoint: {cloud.endpoint_url}")
        click.echo(f"data bucket: {cloud.bucket}  job queue: {cloud.queue_url}")
        click.echo(f"logs: {cloud.log_dir}")
        click.echo("ready; Ctrl-C to stop")
        signal.signal(signal.SIGTERM, on_signal)
        try:
            while not stop["flag"]:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        click.echo("stopping...")
    click.echo("stopped")


@main.command()
@click.argument("paths", nargs=-1, required=True)
@api_option
@stack_option
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--timeout", default=1800.0, show_default=True)
def submit(
    paths: tuple[str, ...], api: str | None, stack: str | None, wait: bool, timeout: float
) -> None:
    """Submit files or folders as embedding jobs."""
    client = api_from_options(api, stack)
    files = collect_files(paths)
    if not files:
        raise click.ClickException("no input files")
    job_ids = submit_files(client, files)
    for jid in job_ids:
        click.echo(f"submitted job {jid}")
    if not wait:
        return
    views = wait_jobs(client, job_ids, timeout)
    failed = False
    for jid in job_ids:
        view = views.get(jid)
        if not view:
            click.echo(f"job {jid}: not found (yet)")
            failed = True
            continue
        print_job(view)
        failed |= view["status"] in ("FAILED",) or view["status"] not in TERMINAL
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("job_id")
@api_option
@stack_option
def status(job_id: str, api: str | None, stack: str | None) -> None:
    """Show a job's status."""
    view = _check(*api_from_options(api, stack).request("GET", f"/v1/jobs/{job_id}"), "GET job")
    print_job(view)


@main.command()
@click.argument("job_id")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False))
@api_option
@stack_option
def results(job_id: str, out: str, api: str | None, stack: str | None) -> None:
    """Download a finished job's result files."""
    view = _check(*api_from_options(api, stack).request("GET", f"/v1/jobs/{job_id}"), "GET job")
    if view["status"] not in TERMINAL:
        raise click.ClickException(f"job {job_id} is {view['status']}")
    for p in download_results(view, Path(out)):
        click.echo(str(p))


@main.command()
@click.option(
    "--samples", default="samples", show_default=True, type=click.Path(exists=True, file_okay=False)
)
@click.option("--out", default="demo-output", show_default=True)
@click.option("--timeout", default=600.0, show_default=True)
@click.option(
    "--template",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="default: the repo's template.yaml",
)
def demo(samples: str, out: str, timeout: float, template: str | None) -> None:
    """Run the sample documents through all three entry paths on the local cloud."""
    from tandem.demo import run_demo

    sys.exit(run_demo(Path(samples), Path(out), timeout, template))


@main.command("cost")
@click.option("--documents", default=1_000_000.0, show_default=True, help="documents per month")
@click.option(
    "--document-kb", default=8.0, show_default=True, help="average UTF-8 KiB per document"
)
@click.option("--docs-per-job", default=100, show_default=True, help="documents per Tandem job")
@click.option("--batch-size", default=64, show_default=True, help="chunks per endpoint call")
@click.option("--instance-type", default="ml.g6.xlarge", show_default=True)
@click.option(
    "--workflow", type=click.Choice(["standard", "express"]), default="standard", show_default=True
)
@click.option("--preprocess-mb-s", type=float, default=None, help="default: BENCHMARKS.md")
@click.option(
    "--endpoint-chunks-per-s",
    type=float,
    default=1500.0,
    show_default=True,
    help="one instance, batched (assumed: measure on the GPU)",
)
@click.option("--batching-speedup", type=float, default=None, help="default: BENCHMARKS.md")
def cost(
    documents: float,
    document_kb: float,
    docs_per_job: int,
    batch_size: int,
    instance_type: str,
    workflow: str,
    preprocess_mb_s: float | None,
    endpoint_chunks_per_s: float,
    batching_speedup: float | None,
) -> None:
    """$ per 1M chunks: Tandem side by side with a naive design, at equal throughput.

    \b
    Tandem: arm64 Lambdas (api, preprocess, deliver: 3 per job); one Standard execution per job
    of --docs-per-job documents (4 transitions + 2 per batch) or one Express execution; one
    endpoint call per batch, made by Step Functions (no Lambda waits on the GPU).
    Naive: x86 Lambdas; one Standard execution per document (3 transitions + 1 per chunk); a
    Lambda per chunk that calls the endpoint and waits; one chunk per call, so the GPU needs
    --batching-speedup times the instance-hours.
    CPU side = Lambda GB-s and requests + Step Functions + API Gateway + SQS (S3, DynamoDB,
    EventBridge and CloudWatch left out). Prices: tandem/prices.json (source and date each);
    durations: docs/BENCHMARKS.md where measured, else the flags.
    """
    from tandem import cost as model

    prices = model.load_prices()
    measured = model.measured(
        endpoint_chunks_per_s=endpoint_chunks_per_s,
        preprocess_mb_s=preprocess_mb_s,
        batching_speedup=batching_speedup,
    )
    workload = model.Workload(
        documents_per_month=documents,
        document_kb=document_kb,
        docs_per_job=docs_per_job,
        batch_size=batch_size,
        instance_type=instance_type,
        workflow=workflow,
    )
    text, summary = model.table(workload, measured, prices)
    click.echo(
        f"workload: {documents:,.0f} documents/month of {document_kb:g} KiB "
        f"({workload.chunks_per_document:g} chunks each, {workload.chunks_per_month:,.0f} "
        f"chunks/month), {docs_per_job} documents per job, batch {batch_size}, {instance_type}"
    )
    click.echo(
        f"measured: chunker {measured.preprocess_mb_s:g} MB/s, endpoint "
        f"{measured.endpoint_chunks_per_s:g} chunks/s batched, batching speed-up "
        f"{measured.batching_speedup:g}x"
    )
    click.echo(text)
    click.echo(
        f"CPU side: naive / Tandem = {summary['cpu_ratio']:.1f}x "
        f"(target >= 20x: {'met' if summary['cpu_ratio'] >= 20 else 'missed'}); "
        f"per month: Tandem ${summary['tandem_cpu'] * workload.chunks_per_month / 1e6:,.2f}, "
        f"naive ${summary['naive_cpu'] * workload.chunks_per_month / 1e6:,.2f}"
    )


if __name__ == "__main__":
    main()
