"""Every events/ file states its outcome, and the outcome checker says what it should."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from tandem.local.outcomes import (
    Outcome,
    OutcomeError,
    check,
    contains,
    event_files,
    load_outcomes,
)

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def test_every_event_file_states_its_outcome_for_a_function_of_the_template() -> None:
    outcomes = load_outcomes(EVENTS)
    assert set(outcomes) == set(event_files(EVENTS))
    assert len(outcomes) >= 30
    functions = {
        lid
        for lid, r in yaml_parse((ROOT / "template.yaml").read_text())["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    assert {o.function for o in outcomes.values()} <= functions


def _events(tmp_path: Path, outcomes: str | None, *events: str) -> Path:
    folder = tmp_path / "events" / "api"
    folder.mkdir(parents=True)
    for name in events:
        (folder / f"{name}.json").write_text("{}")
    if outcomes is not None:
        (folder / "outcomes.toml").write_text(outcomes)
    return tmp_path / "events"


def test_an_event_without_an_outcome_fails(tmp_path: Path) -> None:
    events = _events(tmp_path, 'function = "ApiFunction"\n[a]\nstatus = 200\n', "a", "b")
    with pytest.raises(OutcomeError, match=r"b\.json has no stated outcome"):
        load_outcomes(events)


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        (None, "outcomes.toml is missing"),
        ("[a]\nstatus = 200\n", "needs `function"),
        ('function = "F"\n[a]\nstatus = 200\n[gone]\nstatus = 1\n', "no event file gone.json"),
        ('function = "F"\n[a]\nstatuscode = 200\n', "unknown keys"),
        ('function = "F"\n[a]\nstatus = 200\nresult = {}\n', "mixes"),
        ('function = "F"\n[a]\n', "states nothing"),
    ],
)
def test_unusable_outcomes_are_refused(tmp_path: Path, toml: str | None, problem: str) -> None:
    with pytest.raises(OutcomeError, match=problem):
        load_outcomes(_events(tmp_path, toml, "a"))


def test_contains_is_a_subset_for_objects_and_exact_for_lists() -> None:
    assert contains({"a": 1}, {"a": 1, "b": 2}) == []
    assert contains({"a": {"b": [1, {"c": 2}]}}, {"a": {"b": [1, {"c": 2, "d": 3}]}}) == []
    assert contains({"a": 1}, {"a": 2}) == [".a: expected 1, got 2"]
    assert contains({"a": 1}, {}) == [".a: missing"]
    assert contains([1], [1, 2]) == [".: expected 1 items, got [1, 2]"]
    assert contains({"a": []}, {"a": [1]}) == [".a: expected 0 items, got [1]"]


def _api(status: int, body: object, ctype: str = "application/json") -> dict[str, object]:
    return {"statusCode": status, "headers": {"Content-Type": ctype}, "body": json.dumps(body)}


def test_check_reads_http_responses_results_and_function_errors(tmp_path: Path) -> None:
    def outcome(**expect: object) -> Outcome:
        return Outcome(tmp_path / "e.json", "ApiFunction", dict(expect))

    error = {"errorMessage": "job x not found", "errorType": "JobNotFound", "stackTrace": []}
    assert (
        check(outcome(status=404, error="not_found"), _api(404, {"error": {"code": "not_found"}}))
        == []
    )
    assert check(outcome(status=202), _api(200, {})) == ["status: expected 202, got 200"]
    assert check(outcome(error="x"), _api(422, {"error": {"code": "y"}})) == [
        "error: expected 'x', got 'y'"
    ]
    assert check(outcome(content_type="text/html"), _api(200, "<html>", "text/html; utf-8")) == []
    assert check(outcome(result={"status": "SUCCEEDED"}), {"status": "SUCCEEDED", "n": 1}) == []
    assert check(outcome(errorType="JobNotFound"), error) == []
    assert check(outcome(result={"status": "SUCCEEDED"}), error) == [
        "failed: JobNotFound: job x not found"
    ]
    assert check(outcome(errorType="JobNotFound"), {"status": "SUCCEEDED"})
    assert check(outcome(status=200), {"status": "SUCCEEDED"})  # not an HTTP response


def test_a_folder_can_name_the_parameters_and_seed_of_its_cloud(tmp_path: Path) -> None:
    toml = 'function = "F"\nparameters = { EndpointMode = "async" }\nseed = "s.json"\n[a]\nresult = {}\n'
    events = _events(tmp_path, toml.replace("result = {}", 'errorType = "X"'), "a")
    with pytest.raises(OutcomeError, match="no seed file"):
        load_outcomes(events)
    (events / "s.json").write_text("{}")
    (outcome,) = load_outcomes(events).values()
    assert outcome.profile == ((("EndpointMode", "async"),), "s.json")
    # the repository's async folders run against an async cloud; the others the default one
    profiles = {o.event.parent.name: o.profile for o in load_outcomes(EVENTS).values()}
    assert (
        profiles["submit"]
        == profiles["complete"]
        == (
            (("EndpointMode", "async"),),
            "seed-async.json",
        )
    )
    assert profiles["api"] == ((), "seed.json")
