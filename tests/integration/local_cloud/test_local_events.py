"""Every file in events/ through `tandem local invoke` (the built artefact, no Docker) against one
fresh local cloud seeded with events/seed.json, checked against its stated outcome
(events/<folder>/outcomes.toml). A seeded job that an earlier event changed is seeded again
before the next event that uses it, so each outcome is the one stated: against fresh seed state.

`make build-local` runs once for the session (cached by SAM after the first time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tandem.local.artefact import LocalBuild
from tandem.local.cloud import LocalCloud
from tandem.local.outcomes import Outcome, OutcomeError, check, event_files, load_outcomes
from tandem.local.seed import SeedTarget, load_seed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "events"
SEED = EVENTS / "seed.json"
TANDEM = str(Path(sys.executable).parent / "tandem")


def _outcomes() -> tuple[dict[Path, Outcome], str]:
    try:
        return load_outcomes(EVENTS), ""
    except OutcomeError as exc:  # each event's test fails with it, instead of collection
        return {}, str(exc)


OUTCOMES, OUTCOMES_PROBLEM = _outcomes()


@pytest.fixture(scope="session")
def local_build() -> LocalBuild:
    subprocess.run(["make", "--no-print-directory", "build-local"], cwd=ROOT, check=True)
    return LocalBuild.for_host()


@dataclass
class Seeded:
    cloud: LocalCloud
    state_file: Path
    dirty: set[str] = field(default_factory=set)  # seeded jobs an invoked event may have changed


@pytest.fixture(scope="module")
def seeded(local_build: LocalBuild, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    state_file = tmp_path_factory.mktemp("events") / "local-cloud.json"
    with LocalCloud(seed=SEED, state_file=state_file) as cloud:
        yield Seeded(cloud, state_file)


def tandem_local(seeded: Seeded, *args: str) -> subprocess.CompletedProcess[str]:
    """The `tandem` CLI in a clean environment (no AWS settings of this test process)."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    return subprocess.run(
        [TANDEM, "local", *args, "--state-file", str(seeded.state_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def reseed_if_changed(seeded: Seeded, event: Path) -> None:
    seed = load_seed(SEED)
    text = event.read_text()
    used = {job for job in seed.job_ids if job in text}
    if used & seeded.dirty:
        target = SeedTarget.from_state(ROOT / "template.yaml", seeded.cloud.state())
        seed.apply(target, sorted(used))
    seeded.dirty |= used


@pytest.mark.parametrize("event", event_files(EVENTS), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_event_has_its_stated_outcome(seeded: Seeded, event: Path) -> None:
    if event not in OUTCOMES:
        pytest.fail(OUTCOMES_PROBLEM or f"{event} has no stated outcome")
    outcome = OUTCOMES[event]
    reseed_if_changed(seeded, event)
    run = tandem_local(seeded, "invoke", outcome.function, "-e", str(event))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "START RequestId: " in run.stderr and "REPORT RequestId: " in run.stderr
    response = json.loads(run.stdout)
    problems = check(outcome, response)
    assert not problems, "\n".join(problems) + "\n--- stderr:\n" + run.stderr[-3000:]


def test_env_vars_override_a_declared_variable_like_sam(seeded: Seeded, tmp_path: Path) -> None:
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"ApiFunction": {"DATA_BUCKET": "another-bucket"}}))
    event = EVENTS / "api" / "create_job_source.json"
    run = tandem_local(
        seeded, "invoke", "ApiFunction", "-e", str(event), "--env-vars", str(env_vars)
    )
    assert run.returncode == 0, run.stderr[-2000:]
    response = json.loads(run.stdout)
    assert response["statusCode"] == 422
    assert "s3://another-bucket" in json.loads(response["body"])["error"]["message"]


def test_usage_errors_exit_1_like_sam(seeded: Seeded) -> None:
    run = tandem_local(seeded, "invoke", "NoSuchFunction", "-e", str(EVENTS / "fail" / "fail.json"))
    assert run.returncode == 1 and "Function NoSuchFunction not found in template" in run.stderr
    run = tandem_local(seeded, "invoke", "FailFunction", "-e", "no/such/event.json")
    assert run.returncode == 1 and "No such file or directory" in run.stderr
    assert run.stdout == ""


def test_tandem_local_seed_puts_a_changed_job_back(seeded: Seeded) -> None:
    fail = EVENTS / "fail" / "fail.json"
    reseed_if_changed(seeded, fail)
    assert tandem_local(seeded, "invoke", "FailFunction", "-e", str(fail)).returncode == 0
    job = json.loads(fail.read_text())["job_id"]
    assert (seeded.cloud.jobs.get(job) or {}).get("status") == "FAILED"
    run = tandem_local(seeded, "seed", str(SEED))
    assert run.returncode == 0 and job in run.stdout, run.stderr
    assert (seeded.cloud.jobs.get(job) or {}).get("status") == "RUNNING"
