"""`sam local invoke` against the local cloud, checked with SAM's and botocore's own code (no
Docker, no network): the endpoint variables, the Architecture parameter, the `local` profile and
env.json; and how `tandem local invoke` builds a function's environment and refuses a build for
another architecture."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.config.samconfig import SamConfig
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samtranslator.yaml_helper import yaml_parse
from tandem_common.contracts import ASYNC_FUNCTIONS

from tandem.cli import local_up
from tandem.local.artefact import ArtefactError, check_runnable, host_architecture
from tandem.local.cloud import DEFAULT_PORTS, LOCAL_PARAMETERS
from tandem.local.invoke import function_environment
from tandem.local.state import LocalCloudState
from tandem.local.template import LocalTemplate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
SERVICES = ("s3", "dynamodb", "stepfunctions", "events", "sagemaker-runtime")


def _endpoint(service: str) -> str:
    url: str = boto3.session.Session(region_name="us-east-1").client(service).meta.endpoint_url  # type: ignore[call-overload]
    return url


# ---------------------------------------------------------------------- endpoint variables
def test_template_declares_the_endpoint_variables_empty() -> None:
    variables = yaml_parse(TEMPLATE.read_text())["Globals"]["Function"]["Environment"]["Variables"]
    assert {v: variables[v] for v in ENDPOINT_VARIABLES} == dict.fromkeys(ENDPOINT_VARIABLES, "")


def test_botocore_takes_an_empty_endpoint_variable_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ENDPOINT_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    aws = {s: _endpoint(s) for s in SERVICES}
    assert all(url.startswith("https://") and "amazonaws.com" in url for url in aws.values())
    # as deployed: both declared, both empty -> each service's own AWS endpoint
    for var in ENDPOINT_VARIABLES:
        monkeypatch.setenv(var, "")
    assert {s: _endpoint(s) for s in SERVICES} == aws
    # as against the local cloud: moto for all, the model endpoint for sagemaker-runtime
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:3002")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:3003")
    assert {s: _endpoint(s) for s in SERVICES} == {
        **dict.fromkeys(SERVICES, "http://127.0.0.1:3002"),
        "sagemaker-runtime": "http://127.0.0.1:3003",
    }
    # an empty service variable falls through to the global one, not to AWS
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "")
    assert _endpoint("sagemaker-runtime") == "http://127.0.0.1:3002"


# ---------------------------------------------------------------------- Architecture
@pytest.mark.parametrize(("arch", "wheels"), [("arm64", "aarch64"), ("x86_64", "x86_64")])
def test_architecture_reaches_every_function_and_the_layer_build(arch: str, wheels: str) -> None:
    stacks, _ = SamLocalStackProvider.get_stacks(
        str(TEMPLATE), parameter_overrides={"Architecture": arch}
    )
    functions = list(SamFunctionProvider(stacks).get_all())
    assert len(functions) >= 6 and {f.architecture for f in functions} == {arch}
    (layer,) = {layer.name: layer for f in functions for layer in f.layers}.values()
    assert layer.build_method == "makefile" and layer.build_architecture == arch
    # the Makefile SAM runs for this architecture (ContextPath) installs wheels for it
    makefile = ROOT / layer.metadata["ContextPath"] / "Makefile"
    plan = subprocess.run(
        ["make", "-n", "-f", str(makefile), "build-CommonLayer", "ARTIFACTS_DIR=/nowhere"],
        cwd=ROOT / "layers" / "common",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"--platform manylinux2014_{wheels}" in plan


def test_layer_is_compatible_with_the_chosen_architecture() -> None:
    layer = yaml_parse(TEMPLATE.read_text())["Resources"]["CommonLayer"]
    assert layer["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}]
    assert layer["Metadata"]["BuildArchitecture"] == {"Ref": "Architecture"}


# ---------------------------------------------------------------------- local profile, env.json
# EndpointMode=async adds the async functions (`tandem local up --endpoint-mode async`); the
# others are checked in the default mode (in async mode the api's ENDPOINT_NAME is empty).
MODES = [({}, None), ({"EndpointMode": "async"}, ASYNC_FUNCTIONS)]


@pytest.mark.parametrize(("overrides", "only"), MODES, ids=["realtime", "async"])
def test_local_profile_and_env_json_give_sam_local_the_local_cloud(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str], only: tuple[str, ...] | None
) -> None:
    config = SamConfig(str(ROOT)).get_all(["local", "invoke"], "parameters", env="local")
    assert config["region"] == "us-east-1"  # the local cloud's region, whatever the profile's
    assert config["add_host"] == ["host.docker.internal:host-gateway"]
    env_values = json.loads((ROOT / config["env_vars"]).read_text())

    # What the local cloud gives its own functions for every declared variable...
    local = LocalTemplate(
        TEMPLATE, stack_name=config["stack_name"], overrides={**LOCAL_PARAMETERS, **overrides}
    )
    expected = {
        lid: {
            **spec.environment,
            "AWS_ENDPOINT_URL": f"http://host.docker.internal:{DEFAULT_PORTS['moto']}",
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": (
                f"http://host.docker.internal:{DEFAULT_PORTS['endpoint']}"
            ),
        }
        for lid, spec in local.functions().items()
        if only is None or lid in only
    }
    for variables in expected.values():
        for name in variables:
            monkeypatch.delenv(name, raising=False)  # SAM would take the shell's value
    # ...is what `sam local invoke --config-env local` gives them (SAM's own resolution)
    stacks, _ = SamLocalStackProvider.get_stacks(str(TEMPLATE), parameter_overrides=overrides)
    provider = SamFunctionProvider(stacks)
    runner = LocalLambdaRunner(
        local_runtime=None,  # only the environment is asked for
        function_provider=provider,
        cwd=str(ROOT),
        real_path=str(ROOT),
        aws_region=config["region"],
        env_vars_values=env_values,
    )
    for lid, variables in expected.items():
        function = provider.get(lid)
        assert function is not None, lid
        resolved = runner._make_env_vars(function).resolve()
        assert {k: resolved[k] for k in variables} == variables, lid


def test_local_up_listens_where_env_json_says() -> None:
    defaults = {p.name: p.default for p in local_up.params}
    assert {
        "api": defaults["port"],
        "lambda": defaults["lambda_port"],
        "moto": defaults["moto_port"],
        "endpoint": defaults["endpoint_port"],
    } == DEFAULT_PORTS
    assert defaults["host"] == "127.0.0.1"


# ---------------------------------------------------------------------- tandem local invoke
def test_invoke_environment_follows_sams_order(tmp_path: Path) -> None:
    spec = LocalTemplate(TEMPLATE, overrides=LOCAL_PARAMETERS).functions()["ApiFunction"]
    state = LocalCloudState(
        pid=1,
        stack_name="tandem",
        region="us-east-1",
        moto_url="http://127.0.0.1:3002",
        endpoint_url="http://127.0.0.1:3003",
    )
    env_vars: dict[str, Any] = {
        "Parameters": {"LOG_LEVEL": "DEBUG", "NOT_DECLARED": "x"},
        "ApiFunction": {"BATCH_SIZE": "4"},
        "IngestFunction": {"BATCH_SIZE": "99"},
    }
    shell = {"LOG_LEVEL": "WARNING", "JOBS_TABLE": "from-the-shell", "PATH": "/bin"}
    env = function_environment(spec, state, env_vars, shell, tmp_path / "sdk")
    assert env["DATA_BUCKET"] == "tandem-databucket"  # the template, resolved for the cloud
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:3002"
    assert env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == "http://127.0.0.1:3003"
    assert env["JOBS_TABLE"] == "from-the-shell"  # a declared variable: the shell's value
    assert env["LOG_LEVEL"] == "DEBUG"  # --env-vars beats the shell
    assert env["BATCH_SIZE"] == "4"  # the function's own section beats Parameters
    assert "NOT_DECLARED" not in env  # like SAM: only declared variables
    assert env["AWS_SAM_LOCAL"] == "true" and env["AWS_ACCESS_KEY_ID"] == "testing"
    layer = spec.layer_dirs[0] / "python"
    assert env["PYTHONPATH"].split(":") == [str(spec.code_dir), str(layer), str(tmp_path / "sdk")]


def _fake_so(path: Path, machine: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack("<HH", 3, machine)
    path.write_bytes(header + bytes(44))


def test_invoke_refuses_a_layer_built_for_another_architecture(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text("{}")
    other = 62 if host_architecture() == "arm64" else 183  # x86_64 or aarch64
    _fake_so(tmp_path / "CommonLayer" / "python" / "ext.so", other)
    with pytest.raises(ArtefactError, match="run `make build-local`"):
        check_runnable(tmp_path, [tmp_path / "CommonLayer"])
    native = 183 if host_architecture() == "arm64" else 62
    _fake_so(tmp_path / "CommonLayer" / "python" / "ext.so", native)
    check_runnable(tmp_path, [tmp_path / "CommonLayer"])
