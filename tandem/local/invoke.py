"""`tandem local invoke`: `sam local invoke` without Docker, against a running `tandem local up`.

It runs the built artefact, `<build>/<Function>` plus the built layer, in a fresh python3.13
process (`lambda_worker.py`, the local Lambda service's runtime, run by path with `-S`: the
function sees its code, the layer, the Lambda runtime's SDK and the standard library only).
The build is `make build-local`'s, for this machine's architecture (`artefact.py`).

The environment is built the way `sam local invoke` builds it, with SAM's own
`EnvironmentVariables`: the variables the template declares, with their values resolved for the
running local cloud (its stack name and parameters: `tandem-databucket`, ...; the endpoint
variables set to its moto server and endpoint); then the shell's value of a declared variable;
then `--env-vars` (its `Parameters`, then the function's own section, by logical id or name); plus
the AWS_* runtime variables (`AWS_SAM_LOCAL=true`, region, the local cloud's fake credentials).

Output as `sam local invoke`: the function's response (or its error object) on stdout, logs and
the START/END/REPORT lines on stderr, exit status 0 whether the function succeeded or failed;
a wrong argument (unknown function, unreadable event file, no build) exits 1.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tandem.local import LOCAL_CREDENTIALS
from tandem.local.artefact import ArtefactError, LocalBuild, check_runnable
from tandem.local.lambda_service import INIT_TIMEOUT_S, InitTimeout, Worker
from tandem.local.state import LocalCloudState
from tandem.local.template import FunctionSpec, LocalTemplate

WORKER = Path(__file__).resolve().parent / "lambda_worker.py"
RUNTIME = "python3.13"


class InvokeError(Exception):
    """A usage error (exit status 1), worded like SAM's."""


@dataclass
class Invocation:
    """One invoke's outcome: `payload` is what stdout gets."""

    payload: str
    error_type: str | None = None


def pick_function(functions: dict[str, FunctionSpec], identifier: str | None) -> FunctionSpec:
    """By logical id or function name, as SAM accepts them; the only one when none is given."""
    if identifier is None:
        if len(functions) == 1:
            return next(iter(functions.values()))
        raise InvokeError(
            "You must provide a function logical ID when there are more than one functions in "
            f"your template. Possible options in your template: {sorted(functions)}"
        )
    for lid, spec in functions.items():
        if identifier in (lid, spec.name):
            return spec
    raise InvokeError(f"Function {identifier} not found in template")


def read_env_vars(path: str | None) -> dict[str, Any]:
    """`--env-vars`: `{"Parameters": {...}, "<Function>": {...}}`, as SAM reads it."""
    if path is None:
        return {}
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvokeError(
            f"Could not read environment variables overrides from file {path}: {exc}"
        ) from None
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise InvokeError(f"Environment variables {path} in incorrect format")
    return values


def function_environment(
    spec: FunctionSpec,
    state: LocalCloudState,
    env_vars: dict[str, Any],
    shell: dict[str, str],
    runtime_sdk: Path,
) -> dict[str, str]:
    """The function's environment, as `sam local invoke` would give it, against the local cloud."""
    from samcli.local.lambdafn.env_vars import EnvironmentVariables

    declared = {
        **spec.environment,
        "AWS_ENDPOINT_URL": state.moto_url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": state.endpoint_url,
    }
    overrides = {
        **env_vars.get("Parameters", {}),
        **(env_vars.get(spec.logical_id) or env_vars.get(spec.name) or {}),
    }
    env = EnvironmentVariables(
        spec.name,
        spec.memory,
        spec.timeout,
        spec.handler,
        variables=declared,
        shell_env_values=shell,
        override_values=overrides,
        aws_creds={
            "region": state.region,
            "key": LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "secret": LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        },
    ).resolve()
    code = str(spec.code_dir)
    path = [code, *(str(d / "python") for d in spec.layer_dirs), str(runtime_sdk)]
    env.update(
        {
            # what the Lambda runtime sets around the function
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{RUNTIME}",
            "LAMBDA_TASK_ROOT": code,
            "LAMBDA_RUNTIME_DIR": str(runtime_sdk),
            "PATH": shell.get("PATH", "/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PYTHONPATH": os.pathsep.join(path),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",  # the artefact is read-only in Lambda
            "TANDEM_WORKER_ROOT": str(WORKER.parent),  # kept off the function's sys.path
        }
    )
    return env


def _pump(source: IO[bytes], write: Callable[[str], Any]) -> None:
    for line in iter(source.readline, b""):
        write(line.decode("utf-8", "replace"))


def _max_memory_mb() -> int:
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return math.ceil(rss / (1024 * 1024 if sys.platform == "darwin" else 1024))


def run(
    spec: FunctionSpec,
    event_text: str,
    env: dict[str, str],
    python: str,
    log: Callable[[str], Any],
) -> Invocation:
    """Run the handler once in a fresh process; logs and the START/END/REPORT lines go to `log`."""
    request_id = str(uuid.uuid4())
    log(f"Invoking {spec.handler} ({RUNTIME})\n")
    try:
        event = json.loads(event_text) if event_text.strip() else {}
    except ValueError as exc:
        return _error(request_id, "Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}")
    started = time.monotonic()
    worker = Worker(spec, env, subprocess.PIPE, argv=[python, "-S", str(WORKER), spec.handler])
    assert worker.proc.stderr is not None
    pump = threading.Thread(target=_pump, args=(worker.proc.stderr, log), daemon=True)
    pump.start()
    try:
        try:
            worker.wait_initialised(INIT_TIMEOUT_S)
        except (InitTimeout, EOFError):
            return _error(request_id, "Runtime.ExitError", "Runtime exited before init")
        init_ms = (time.monotonic() - started) * 1000
        log(f"START RequestId: {request_id} Version: $LATEST\n")
        began = time.monotonic()
        request = {
            "event": event,
            "request_id": request_id,
            "deadline_ms": int((time.time() + spec.timeout) * 1000),
            "function_name": spec.name,
            "function_arn": spec.arn,
            "memory": spec.memory,
        }
        try:
            reply = worker.call(request, timeout=float(spec.timeout))
        except (EOFError, OSError, ValueError):
            reply = {"ok": False, "errorType": "Runtime.ExitError", "errorMessage": "exited"}
        duration_ms = (time.monotonic() - began) * 1000
        if reply is None:
            log(f"Function '{spec.logical_id}' timed out after {spec.timeout} seconds\n")
            outcome = _error(
                request_id,
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: Task timed out after {spec.timeout:.2f} seconds",
            )
        elif reply.get("ok"):
            outcome = Invocation(json.dumps(reply.get("result")))
        else:
            outcome = _error(
                request_id,
                str(reply.get("errorType")),
                str(reply.get("errorMessage")),
                list(reply.get("stackTrace") or []),
            )
    finally:
        with contextlib.suppress(OSError):
            if worker.proc.stdin:
                worker.proc.stdin.close()  # the worker's loop ends: it exits on its own
        try:
            worker.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
        worker.kill()
        pump.join(timeout=10)
    log(f"END RequestId: {request_id}\n")
    log(
        f"REPORT RequestId: {request_id}\tInit Duration: {init_ms:.2f} ms\t"
        f"Duration: {duration_ms:.2f} ms\tBilled Duration: {math.ceil(duration_ms)} ms\t"
        f"Memory Size: {spec.memory} MB\tMax Memory Used: {_max_memory_mb()} MB\t\n"
    )
    return outcome


def _error(
    request_id: str, error_type: str, message: str, trace: list[str] | None = None
) -> Invocation:
    body = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": trace or [],
    }
    return Invocation(json.dumps(body), error_type)


def invoke(
    function: str | None,
    event_text: str,
    state: LocalCloudState,
    template: Path | None = None,
    env_vars_file: str | None = None,
    log: Callable[[str], Any] = sys.stderr.write,
) -> Invocation:
    """`tandem local invoke`: find the built function, build its environment, run it once."""
    build = LocalBuild.for_host()
    template = template or build.template
    if not template.is_file():
        raise InvokeError(f"Template file not found at {template}: run `make build-local`")
    try:
        tpl = LocalTemplate(
            template, stack_name=state.stack_name, overrides=state.parameter_overrides
        )
    except Exception as exc:  # a template LocalTemplate cannot read is a usage error here
        raise InvokeError(f"{template}: {exc}") from None
    spec = pick_function(tpl.functions(), function)
    # the runtime (SDK + python3.13) next to the build, else this machine's `make build-local` one
    runtime = LocalBuild(template.parent.parent)
    if not (runtime.root / "runtime").is_dir():
        runtime = build
    try:
        check_runnable(template.parent, spec.layer_dirs)
        python = runtime.python()
    except ArtefactError as exc:
        raise InvokeError(str(exc)) from None
    env = function_environment(
        spec, state, read_env_vars(env_vars_file), dict(os.environ), runtime.runtime_sdk
    )
    return run(spec, event_text, env, python, log)
