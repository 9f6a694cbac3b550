"""Every file in events/ through `tandem local invoke` (the built artefact, no Docker) against a
fresh local cloud seeded with events/seed.json, checked against its stated outcome
(events/<folder>/outcomes.toml). A seeded job that an earlier event changed is seeded again
before the next event that uses it, so each outcome is the one stated: against fresh seed state.
A folder whose outcomes name template parameters and a seed (the async functions' folders:
`EndpointMode=async`, events/seed-async.json) runs against a cloud started that way; events are
ordered by that profile, so one cloud (stack `tandem`, the names the event files use) runs at a
time.

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
    seed: Path = SEED
    dirty: set[str] = field(default_factory=set)  # seeded jobs an invoked event may have changed


Profile = tuple[tuple[tuple[str, str], ...], str]
DEFAULT_PROFILE: Profile = ((), SEED.name)


class Clouds:
    """The seeded local cloud of one profile at a time: asking for another closes the last."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.current: tuple[Profile, Seeded] | None = None

    def get(self, profile: Profile) -> Seeded:
        if self.current is not None and self.current[0] == profile:
            return self.current[1]
        self.close()
        parameters, seed = profile
        state_file = self.folder / f"local-cloud-{len(parameters)}-{seed}.json"
        cloud = LocalCloud(
            seed=EVENTS / seed, state_file=state_file, parameter_overrides=dict(parameters)
        )
        cloud.__enter__()
        self.current = (profile, Seeded(cloud, state_file, EVENTS / seed))
        return self.current[1]

    def close(self) -> None:
        if self.current is not None:
            self.current[1].cloud.close()
            self.current = None


@pytest.fixture(scope="module")
def clouds(local_build: LocalBuild, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clouds]:
    pool = Clouds(tmp_path_factory.mktemp("events"))
    yield pool
    pool.close()


@pytest.fixture
def seeded(clouds: Clouds) -> Seeded:
    """The default profile's cloud (realtime, events/seed.json)."""
    return clouds.get(DEFAULT_PROFILE)


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
    seed = load_seed(seeded.seed)
    text = event.read_text()
    used = {job for job in seed.job_ids if job in text}
    if used & seeded.dirty:
        target = SeedTarget.from_state(ROOT / "template.yaml", seeded.cloud.state())
        seed.apply(target, sorted(used))
    seeded.dirty |= used


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


def _by_profile(event: object) -> tuple[bool, str]:
    outcome = OUTCOMES.get(Path(str(event)))
    return (outcome is not None and outcome.profile != DEFAULT_PROFILE, str(event))


@pytest.mark.parametrize(
    "event", sorted(event_files(EVENTS), key=_by_profile), ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_event_has_its_stated_outcome(clouds: Clouds, event: Path) -> None:
    if event not in OUTCOMES:
        pytest.fail(OUTCOMES_PROBLEM or f"{event} has no stated outcome")
    outcome = OUTCOMES[event]
    seeded = clouds.get(outcome.profile)
    reseed_if_changed(seeded, event)
    run = tandem_local(seeded, "invoke", outcome.function, "-e", str(event))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "START RequestId: " in run.stderr and "REPORT RequestId: " in run.stderr
    response = json.loads(run.stdout)
    problems = check(outcome, response)
    assert not problems, "\n".join(problems) + "\n--- stderr:\n" + run.stderr[-3000:]
