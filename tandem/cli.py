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
@click.argument("job_id")
@api_option
@stack_option
@click.option(
    "--idempotency-key",
    default=None,
    help="without one (or with the same one) a repeat returns the same retry job; "
    "a new key makes a new retry job",
)
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--timeout", default=1800.0, show_default=True)
def retry(
    job_id: str,
    api: str | None,
    stack: str | None,
    idempotency_key: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Retry a FAILED or PARTIAL job for its failed documents only (POST /v1/jobs/{id}/retry)."""
    client = api_from_options(api, stack)
    headers = {"idempotency-key": idempotency_key} if idempotency_key else None
    body = _check(*client.request("POST", f"/v1/jobs/{job_id}/retry", headers=headers), "retry")
    rid = body["job_id"]
    click.echo(f"retry job {rid} of {job_id}: {body['documents']} document(s), {body['status']}")
    for s in body.get("skipped") or []:
        click.echo(f"  not retried {s.get('id')}: {s.get('reason')}")
    more = int(body.get("skipped_count") or 0) - len(body.get("skipped") or [])
    if more > 0:
        click.echo(f"  ... and {more} more not retried")
    if not wait:
        return
    view = wait_jobs(client, [rid], timeout).get(rid)
    if not view:
        click.echo(f"job {rid}: not found (yet)")
        sys.exit(1)
    print_job(view)
    sys.exit(1 if view["status"] == "FAILED" or view["status"] not in TERMINAL else 0)


# ---------------------------------------------------------------------- redrive
def redrive_body(body: str, message_id: str) -> str:
    """The body to send back to the job queue for a DLQ message.

    The job DLQ collects three kinds of message: job-queue messages (after maxReceiveCount),
    S3 "Object Created" events that EventBridge could not deliver, and Lambda on-failure records
    (`requestPayload` = that event). Queue messages keep their job: one without a `job_id`
    gets the id ingest gave it (`uuid5(NS, "sqs:" + MessageId)`; SQS keeps the MessageId when
    it dead-letters a message), since the resent message gets a new MessageId. S3 events become
    `{"job_id": <the S3 entry's job id>, "s3_uri"}`, so the job is the one the upload names.
    Anything else (not JSON, not a job request) goes back unchanged.
    """
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if not isinstance(payload, dict):
        return body
    if isinstance(payload.get("requestPayload"), dict) and "requestContext" in payload:
        payload = payload["requestPayload"]
    if payload.get("source") == "aws.s3" and payload.get("detail-type") == "Object Created":
        detail = payload.get("detail") or {}
        bucket = (detail.get("bucket") or {}).get("name")
        obj = detail.get("object") or {}
        key, revision = obj.get("key"), obj.get("version-id") or obj.get("etag")
        if not (bucket and key and revision) or not key.startswith("inbox/") or key.endswith("/"):
            return body
        return json.dumps(
            {"job_id": s3_job_id(bucket, key, str(revision)), "s3_uri": f"s3://{bucket}/{key}"}
        )
    if "job_id" not in payload and any(k in payload for k in ("documents", "source", "s3_uri")):
        payload["job_id"] = str(uuid.uuid5(JOB_NAMESPACE, f"sqs:{message_id}"))
        return json.dumps(payload)
    return body


def _message_attributes(m: dict[str, Any]) -> dict[str, Any]:
    """Receive returns empty list fields that SendMessage refuses: keep the scalar ones."""
    out = {}
    for name, attr in (m.get("MessageAttributes") or {}).items():
        kept = {k: v for k, v in attr.items() if k in ("DataType", "StringValue", "BinaryValue")}
        if "StringValue" in kept or "BinaryValue" in kept:
            out[name] = kept
    return out


def redrive_messages(
    sqs: Any, dlq_url: str, queue_url: str, limit: int | None = None, visibility: int = 120
) -> tuple[int, int]:
    """Move up to `limit` messages (default: what the DLQ holds now) from the DLQ to the queue,
    in batches of 10: send, then delete from the DLQ only the messages whose send succeeded.
    Nothing is lost: a message that was not sent stays in the DLQ. Returns (moved, not sent)."""
    if limit is None:
        attrs = sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        limit = int(attrs.get("ApproximateNumberOfMessages", 0))
    moved = unsent = 0
    while moved + unsent < limit:
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, limit - moved - unsent),
            VisibilityTimeout=visibility,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        entries = []
        for i, m in enumerate(messages):
            entry: dict[str, Any] = {
                "Id": str(i),
                "MessageBody": redrive_body(m["Body"], m["MessageId"]),
            }
            if attributes := _message_attributes(m):
                entry["MessageAttributes"] = attributes
            entries.append(entry)
        sent = {
            e["Id"]
            for e in sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get(
                "Successful", []
            )
        }
        done = [(i, m) for i, m in enumerate(messages) if str(i) in sent]
        unsent += len(messages) - len(done)
        if done:
            sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in done],
            )
        moved += len(done)
    return moved, unsent


def _local_sqs(url: str, region: str) -> Any:
    import boto3

    return boto3.client(
        "sqs",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fixed fake credentials
    )


def redrive_queues(
    stack: str | None,
    local_url: str | None,
    queue_url: str | None,
    dlq_url: str | None,
    region: str,
) -> tuple[Any, str, str]:
    """(sqs client, job queue URL, DLQ URL) from explicit URLs, a local cloud or a stack."""
    import boto3

    if local_url:
        sqs = _local_sqs(local_url, region)
        name = stack or "tandem"
        queue_url = queue_url or sqs.get_queue_url(QueueName=f"{name}-JobQueue")["QueueUrl"]
        dlq_url = dlq_url or sqs.get_queue_url(QueueName=f"{name}-JobDeadLetterQueue")["QueueUrl"]
        return sqs, str(queue_url), str(dlq_url)
    if stack and not (queue_url and dlq_url):
        cfn = boto3.client("cloudformation")
        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
        }
        queue_url = queue_url or outputs.get("JobQueueUrl")
        dlq_url = dlq_url or outputs.get("JobDeadLetterQueueUrl")
        if not (queue_url and dlq_url):
            raise click.ClickException(
                f"stack {stack} has no JobQueueUrl/JobDeadLetterQueueUrl outputs"
            )
        return boto3.client("sqs", region_name=cfn.meta.region_name), queue_url, dlq_url
    if not (queue_url and dlq_url):
        raise click.ClickException("give --stack, --local URL, or both --queue-url and --dlq-url")
    parts = urllib.parse.urlsplit(queue_url)
    if parts.hostname in ("127.0.0.1", "localhost"):
        return _local_sqs(f"{parts.scheme}://{parts.netloc}", region), queue_url, dlq_url
    return boto3.client("sqs", region_name=region), queue_url, dlq_url


@main.command()
@click.option(
    "--stack",
    default=None,
    help="deployed stack: queues from its JobQueueUrl/JobDeadLetterQueueUrl outputs "
    "(with --local: the local stack name, default tandem)",
)
@click.option(
    "--local", "local_url", default=None, help="the moto URL that `tandem local up` prints"
)
@click.option("--queue-url", default=None, help="the job queue (destination)")
@click.option("--dlq-url", default=None, help="the dead-letter queue (source)")
@click.option(
    "--max-messages",
    type=int,
    default=None,
    help="move at most this many (default: what the DLQ holds when redrive starts)",
)
@click.option(
    "--region",
    default=lambda: (
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    ),
    show_default="$AWS_REGION or us-east-1",
)
def redrive(
    stack: str | None,
    local_url: str | None,
    queue_url: str | None,
    dlq_url: str | None,
    max_messages: int | None,
    region: str,
) -> None:
    """Move the job dead-letter queue's messages back to the job queue."""
    sqs, queue, dlq = redrive_queues(stack, local_url, queue_url, dlq_url, region)
    moved, unsent = redrive_messages(sqs, dlq, queue, max_messages)
    click.echo(f"moved {moved} message(s) from {dlq} to {queue}")
    if unsent:
        click.echo(f"{unsent} message(s) could not be sent and stay in the DLQ")
        sys.exit(1)


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
