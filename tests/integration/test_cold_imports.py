"""What each built handler imports at cold start: none of the heavy modules it does not need.

Each function of `make build-local` (the build for this machine, the same code as `make build`'s)
is imported in a fresh python3.13, as Lambda loads it (its code, the built layer, the runtime's
SDK, its environment from the template), and its `sys.modules` is read back. Deterministic: it
counts modules, it does not time anything (the times are bench/lambda_footprint.py's, in
docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tandem_common.contracts import ASYNC_FUNCTIONS, FUNCTIONS

from tandem.local.artefact import LocalBuild
from tandem.local.template import LocalTemplate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# module (or package) -> why no handler may import it at cold start
HEAVY = {
    "aws_xray_sdk": "the X-Ray SDK: the Tracer is built on the first invocation, in Lambda only",
    "aws_lambda_powertools.event_handler": (
        "Powertools' resolvers (every one of them, asyncio, every event data class): the api "
        "routes with tandem_common.api.http"
    ),
    "aws_lambda_powertools.utilities.batch": "the batch utility: usecases/sqs_records.py",
    "aws_lambda_powertools.utilities.parser": "every parser model: ingest reads its own",
    "aws_lambda_powertools.utilities.data_classes": "every event data class",
    "tandem_common.api.openapi": "the OpenAPI generator: the document is a file",
    "asyncio": "asyncio: nothing in a handler is async",
    "numpy": "numpy: the layer writes .npy with the standard library",
    "pydantic": "pydantic: the layer's models and settings are msgspec structs (models.py)",
}
# what only some functions need
NEEDED_BY = {
    "aws_lambda_powertools.utilities.idempotency": {"IngestFunction"},
}

PROBE = """
import json, sys
import handler
print(json.dumps(sorted(sys.modules)))
"""


@pytest.fixture(scope="module")
def local_build() -> LocalBuild:
    subprocess.run(["make", "--no-print-directory", "build-local"], cwd=ROOT, check=True)
    return LocalBuild.for_host()


def imported_at_cold_start(build: LocalBuild, function: str) -> set[str]:
    mode = "async" if function in ASYNC_FUNCTIONS else "realtime"  # where the function exists
    spec = LocalTemplate(build.template, overrides={"EndpointMode": mode}).functions()[function]
    env = {
        **{k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ},
        **spec.environment,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "PYTHONPATH": os.pathsep.join(
            [
                str(build.build_dir / function),
                str(build.build_dir / "CommonLayer" / "python"),
                str(build.runtime_sdk),
            ]
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    out = subprocess.run(
        [build.python(), "-c", PROBE],
        env=env,
        cwd=build.build_dir / function,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_cold_handler_imports_no_heavy_module(local_build: LocalBuild, function: str) -> None:
    modules = imported_at_cold_start(local_build, function)
    assert "tandem_common" in modules and "handler" in modules  # it did load the real thing
    found = {}
    for heavy, why in HEAVY.items():
        loaded = sorted(m for m in modules if m == heavy or m.startswith(heavy + "."))
        if loaded:
            found[heavy] = (why, loaded[:5])
    assert found == {}, found
    for module, users in NEEDED_BY.items():
        assert (module in modules) == (function in users), (module, function)
