"""`tandem`: the commands and their options. The work is done by the modules they call:
client.py (the HTTP API), submission.py (files → jobs), redrive.py, console.py (output),
cost.py, demo.py and local/ (the local cloud)."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from tandem_common.contracts import TERMINAL_STATUSES

from tandem import console
from tandem.client import TandemApiError, TandemClient
from tandem.redrive import RedriveError, redrive_messages, redrive_queues
from tandem.results import merge_shards
from tandem.submission import NoSuchInput, collect_files, submit_files

F = TypeVar("F", bound=Callable[..., Any])
REPO_TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"

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


def _one_line_errors(errors: Callable[[], tuple[type[Exception], ...]]) -> Callable[[F], F]:
    """These errors as one-line CLI errors (exit 1), not tracebacks; `errors` is called at run
    time, so a command's heavy modules are imported only when it runs."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except errors() as exc:
                raise click.ClickException(str(exc)) from None

        return wrapper  # type: ignore[return-value]

    return decorate


friendly_errors = _one_line_errors(lambda: (TandemApiError, NoSuchInput, RedriveError))


def _local_errors() -> tuple[type[Exception], ...]:
    from tandem.local.invoke import InvokeError
    from tandem.local.seed import SeedError
    from tandem.local.state import NoLocalCloud

    return (InvokeError, SeedError, NoLocalCloud)


# a missing local cloud or build, or a bad argument: one line, exit 1, like SAM's errors
local_errors = _one_line_errors(_local_errors)


@click.group()
def main() -> None:
    """Tandem: serverless AI inference pipeline."""


# `tandem local up --endpoint-mode async`: the model scales to zero after this long idle, and the
# scheduled functions (the async sweep, the watchdog) run this often (rate(1 minute) in AWS).
ASYNC_SCALE_TO_ZERO_S = 120.0
ASYNC_SWEEP_S = 60.0


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
@click.option(
    "--moto-port",
    default=3002,
    show_default=True,
    help="moto server port (S3, DynamoDB, SQS, Step Functions): env.json's AWS_ENDPOINT_URL",
)
@click.option(
    "--endpoint-port",
    default=3003,
    show_default=True,
    help="model endpoint port: env.json's AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="address every service binds; 0.0.0.0 lets `sam local invoke` containers reach them "
    "(it also exposes them, unauthenticated, to your network)",
)
@click.option(
    "--seed",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="seed file to load once up (events/seed.json: the state the events/ files need)",
)
@click.option(
    "--endpoint-mode",
    type=click.Choice(["realtime", "async"]),
    default="realtime",
    show_default=True,
    help="the template's EndpointMode; async: an async front (InvokeEndpointAsync, a queue, SNS "
    "notifications to the complete function) before the model, which scales to zero after "
    f"{ASYNC_SCALE_TO_ZERO_S:g} s idle, and the sweep every {ASYNC_SWEEP_S:g} s",
)
@local_errors
def local_up(
    port: int,
    lambda_port: int,
    moto_port: int,
    endpoint_port: int,
    host: str,
    seed: str | None,
    endpoint_mode: str,
) -> None:
    """Start the local cloud and serve until Ctrl-C."""
    from tandem.local.cloud import STATE_FILE, LocalCloud, serve_until_stopped

    click.echo("starting the local cloud (the endpoint loads the model; this can take a while)...")
    is_async = endpoint_mode == "async"
    cloud = LocalCloud(
        api_port=port,
        lambda_port=lambda_port,
        moto_port=moto_port,
        endpoint_port=endpoint_port,
        host=host,
        seed=seed,
        state_file=STATE_FILE,
        parameter_overrides={"EndpointMode": endpoint_mode},
        scale_to_zero_after_s=ASYNC_SCALE_TO_ZERO_S if is_async else None,
        schedule_interval_s=ASYNC_SWEEP_S if is_async else None,
    )
    with cloud:
        serve_until_stopped(cloud, click.echo)
    click.echo("stopped")


local_cloud_options = [
    click.option(
        "--state-file",
        type=click.Path(dir_okay=False),
        default=None,
        help="the running local cloud's state file (default .tandem/local-cloud.json, written "
        "by `tandem local up`)",
    ),
    click.option("--moto-url", default=None, help="instead of the state file: the moto URL"),
    click.option(
        "--endpoint-url", default=None, help="instead of the state file: the endpoint URL"
    ),
    click.option("--lambda-url", default=None, help="instead of the state file: the Lambda URL"),
]


def with_local_cloud_options(fn: F) -> F:
    for option in reversed(local_cloud_options):
        fn = option(fn)
    return fn


@local.command("invoke")
@click.argument("function_logical_id", required=False)
@click.option(
    "-e",
    "--event",
    default=None,
    help="JSON file with the event passed to the function ('-' reads stdin); default {}",
)
@click.option(
    "-n",
    "--env-vars",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="JSON file of environment variable values, as for `sam local invoke`",
)
@click.option(
    "-t",
    "--template",
    type=click.Path(dir_okay=False),
    default=None,
    help="the built template (default .aws-sam/<this machine's arch>/build/template.yaml, "
    "from `make build-local`)",
)
@click.option(
    "--parameter-overrides",
    default=None,
    help="template parameters, 'Key=Value Key2=Value2' (added to the local cloud's)",
)
@with_local_cloud_options
@local_errors
def local_invoke(
    function_logical_id: str | None,
    event: str | None,
    env_vars: str | None,
    template: str | None,
    parameter_overrides: str | None,
    state_file: str | None,
    moto_url: str | None,
    endpoint_url: str | None,
    lambda_url: str | None,
) -> None:
    """Invoke a built function once, like `sam local invoke` but without Docker.

    The function runs from `make build-local`'s artefact in a fresh python3.13 process, with its
    environment from the template resolved against the running `tandem local up`, then
    --env-vars. Its response goes to stdout, logs to stderr; the exit status is 0 whether the
    function succeeded or not.
    """
    from tandem.local.cloud import LOCAL_PARAMETERS
    from tandem.local.invoke import invoke
    from tandem.local.state import find_local_cloud

    event_text = _read_event(event)
    overrides = _parameters(parameter_overrides)
    state = find_local_cloud(
        state_file, moto_url, endpoint_url, lambda_url, overrides, LOCAL_PARAMETERS
    )
    outcome = invoke(
        function_logical_id,
        event_text,
        state,
        Path(template) if template else None,
        env_vars,
        log=lambda text: click.echo(text, err=True, nl=False),
    )
    click.echo(outcome.payload, nl=False)
    click.echo("", err=True)


@local.command("seed")
@click.argument("seed_file", type=click.Path(exists=True, dir_okay=False))
@with_local_cloud_options
@local_errors
def local_seed(
    seed_file: str,
    state_file: str | None,
    moto_url: str | None,
    endpoint_url: str | None,
    lambda_url: str | None,
) -> None:
    """(Re)apply a seed file to a running local cloud: its jobs go back to the seeded state."""
    from tandem.local.cloud import LOCAL_PARAMETERS
    from tandem.local.seed import SeedTarget, load_seed
    from tandem.local.state import find_local_cloud

    seed = load_seed(seed_file)
    state = find_local_cloud(state_file, moto_url, endpoint_url, lambda_url, {}, LOCAL_PARAMETERS)
    built = seed.apply(SeedTarget.from_state(REPO_TEMPLATE, state))
    click.echo(f"seeded {len(seed.objects)} object(s); jobs: {', '.join(built) or 'none'}")


@local.command("metrics")
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="the running local cloud's state file (default .tandem/local-cloud.json)",
)
@click.option(
    "--log-dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="instead of the state file: a local cloud session's log folder",
)
@local_errors
def local_metrics(state_file: str | None, log_dir: str | None) -> None:
    """Sum up the metrics the local cloud's functions emitted (EMF lines in their logs)."""
    from tandem.local.metrics import summary
    from tandem.local.state import STATE_FILE, read_state

    folder = Path(log_dir) if log_dir else Path(read_state(Path(state_file or STATE_FILE)).log_dir)
    click.echo(summary(folder))


def _read_event(event: str | None) -> str:
    if event is None:
        return "{}"
    try:
        with click.open_file(event, "r", encoding="utf-8") as fp:
            return str(fp.read())
    except OSError as exc:
        raise click.ClickException(str(exc)) from None


def _parameters(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    from samcli.cli.types import CfnParameterOverridesType

    parsed: dict[str, str] = CfnParameterOverridesType().convert(text, None, None)
    return parsed


@main.command()
@click.argument("paths", nargs=-1, required=True)
@api_option
@stack_option
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--timeout", default=1800.0, show_default=True)
@friendly_errors
def submit(
    paths: tuple[str, ...], api: str | None, stack: str | None, wait: bool, timeout: float
) -> None:
    """Submit files or folders as embedding jobs."""
    client = TandemClient.from_options(api, stack)
    files = collect_files(paths)
    if not files:
        raise click.ClickException("no input files")
    job_ids = submit_files(client, files)
    for jid in job_ids:
        click.echo(f"submitted job {jid}")
    if not wait:
        return
    with console.JobProgress() as progress:
        views = client.wait_for_jobs(job_ids, timeout, on_update=progress)
    sys.exit(0 if console.report_jobs(job_ids, views) else 1)


@main.command()
@click.argument("job_id")
@api_option
@stack_option
@friendly_errors
def status(job_id: str, api: str | None, stack: str | None) -> None:
    """Show a job's status."""
    console.print_job(TandemClient.from_options(api, stack).get_job(job_id))


@main.command()
@click.argument("job_id")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False))
@click.option(
    "--merge/--no-merge",
    default=False,
    show_default=True,
    help="also write vectors.jsonl and vectors.npy of the whole job",
)
@api_option
@stack_option
@friendly_errors
def results(job_id: str, out: str, merge: bool, api: str | None, stack: str | None) -> None:
    """Download a finished job's result files and shards (a progress bar for the shards)."""
    client = TandemClient.from_options(api, stack)
    view = client.get_job(job_id)
    if view["status"] not in TERMINAL_STATUSES:
        raise click.ClickException(f"job {job_id} is {view['status']}")
    with console.ShardProgress() as progress:
        written = client.download_results(view, Path(out), on_shard=progress)
    click.echo(f"{len(written)} files in {out}")
    if merge and (Path(out) / "shards.jsonl").exists():
        jsonl, npy, rows = merge_shards(Path(out))
        click.echo(f"merged {rows} rows into {jsonl} and {npy}")


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
@friendly_errors
def retry(
    job_id: str,
    api: str | None,
    stack: str | None,
    idempotency_key: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Retry a FAILED or PARTIAL job for its failed documents only (POST /v1/jobs/{id}/retry)."""
    client = TandemClient.from_options(api, stack)
    body = client.retry_job(job_id, idempotency_key)
    console.print_retry(job_id, body)
    if not wait:
        return
    rid = body["job_id"]
    with console.JobProgress() as progress:
        views = client.wait_for_jobs([rid], timeout, on_update=progress)
    sys.exit(0 if console.report_jobs([rid], views) else 1)


@main.command()
@click.argument("query")
@click.option("--top-k", "-k", default=5, show_default=True, help="how many chunks (at most 100)")
@click.option("--document", "documents", multiple=True, help="only this document (repeatable)")
@click.option("--job", "jobs", multiple=True, help="only chunks indexed by this job (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON answer")
@api_option
@stack_option
@friendly_errors
def search(
    query: str,
    top_k: int,
    documents: tuple[str, ...],
    jobs: tuple[str, ...],
    as_json: bool,
    api: str | None,
    stack: str | None,
) -> None:
    """Search the indexed documents (POST /v1/search): the nearest chunks, best first."""
    body = TandemClient.from_options(api, stack).search(query, top_k, documents, jobs)
    if as_json:
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        console.print_search(body)


@main.command()
@click.argument("document_id")
@api_option
@stack_option
@friendly_errors
def delete(document_id: str, api: str | None, stack: str | None) -> None:
    """Remove a document's vectors from the index (DELETE /v1/documents/{id}); idempotent."""
    body = TandemClient.from_options(api, stack).delete_document(document_id)
    if body["found"]:
        click.echo(f"deleted document {document_id}: {body['vectors']} vector(s)")
    else:
        click.echo(f"document {document_id} was not in the index (nothing to delete)")


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
@friendly_errors
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
    "--workflow",
    type=click.Choice(["auto", "standard", "express"]),
    default="auto",
    show_default=True,
    help="auto: as intake routes jobs (Express up to --express-max-bytes and 32 batches)",
)
@click.option(
    "--express-max-bytes",
    type=int,
    default=1024 * 1024,
    show_default=True,
    help="the template's ExpressMaxBytes (0: every job on Standard)",
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
@click.option(
    "--busy-hours",
    type=float,
    default=8.0,
    show_default=True,
    help="endpoint modes: hours of traffic in a day (the rest idle)",
)
def cost(
    documents: float,
    document_kb: float,
    docs_per_job: int,
    batch_size: int,
    instance_type: str,
    workflow: str,
    express_max_bytes: int,
    preprocess_mb_s: float | None,
    endpoint_chunks_per_s: float,
    batching_speedup: float | None,
    busy_hours: float,
) -> None:
    """$ per 1M chunks: Tandem side by side with a naive design, at equal throughput; then the
    GPU bill of a bursty day in both endpoint modes.

    \b
    Tandem: arm64 Lambdas (api, preprocess, deliver: 3 per job, and collect: 1 per batch); one
    execution per job of --docs-per-job documents, Standard (4 transitions + 2 per batch) and
    Express ($1 per 1M executions + GB-s of its modelled duration, 100 ms and 64 MB steps) side
    by side, and the one intake routes the job to; one endpoint call per batch, made by Step
    Functions (no Lambda waits on the GPU).
    Naive: x86 Lambdas; one Standard execution per document (3 transitions + 1 per chunk); a
    Lambda per chunk that calls the endpoint and waits; one chunk per call, so the GPU needs
    --batching-speedup times the instance-hours.
    CPU side = Lambda GB-s and requests + Step Functions + API Gateway + SQS (S3, DynamoDB,
    EventBridge and CloudWatch left out). Prices: tandem/prices.json (source and date each);
    durations: docs/BENCHMARKS.md where measured, else the flags.
    Endpoint modes: the month's chunks spread over days of --busy-hours traffic; realtime keeps
    one instance on around the clock, async (scale to zero) pays the busy hours, each burst's
    launch and scale-in tail, and its Lambdas, SNS and DynamoDB per batch; async's price is the
    first batch's wait for a new instance (prices.json "figures").
    """
    from tandem import cost as model

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
        express_max_bytes=express_max_bytes,
    )
    day = model.BurstyDay(busy_hours=busy_hours)
    click.echo(model.report(workload, measured, model.load_prices(), day))


if __name__ == "__main__":
    main()
