"""The stated outcome of each event file: `events/<folder>/outcomes.toml`.

Every `events/<folder>/*.json` is an event for the function the folder's `outcomes.toml` names,
and has a table there, keyed by its file name without `.json`, saying what it does against a
freshly seeded local cloud (`tandem local up --seed events/seed.json`):

    function = "ApiFunction"          # the function this folder's events are for
    parameters = { EndpointMode = "async" }  # optional: the template parameters of the cloud
    seed = "seed-async.json"          # optional: its seed, in events/ (default seed.json)

    [create_job_inline]               # an HTTP API event: the payload-v2 response
    status = 202                      #   statusCode
    error = "validation_error"        #   body.error.code
    body = { status = "QUEUED" }      #   the JSON body contains this
    content_type = "text/html"        #   Content-Type starts with this

    [preprocess]                      # any other event: what the function returns
    result = { batch_count = 2 }      #   the result contains this
    errorType = "JobNotFound"         #   or: the function failed with this errorType

"Contains": a table matches a JSON object holding those keys with matching values (others may
be there too); an array matches an array of the same length, item by item; anything else must be
equal. `tests/unit/test_event_outcomes.py` fails for an event without a stated outcome;
`tests/integration/local_cloud/test_local_events.py` runs every event and checks it.
"""

from __future__ import annotations

import base64
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTCOMES_FILE = "outcomes.toml"
API_KEYS = {"status", "error", "body", "content_type"}
FUNCTION_KEYS = {"result", "errorType"}


class OutcomeError(Exception):
    """An outcomes file that cannot be read, or an event without a stated outcome."""


DEFAULT_SEED = "seed.json"


@dataclass(frozen=True)
class Outcome:
    event: Path
    function: str
    expect: dict[str, Any]
    parameters: tuple[tuple[str, str], ...] = ()  # the cloud's template parameter overrides
    seed: str = DEFAULT_SEED  # in the events folder

    @property
    def profile(self) -> tuple[tuple[tuple[str, str], ...], str]:
        """The local cloud this event needs: events of one profile share one seeded cloud."""
        return self.parameters, self.seed


def event_files(events_dir: Path) -> list[Path]:
    return sorted(events_dir.glob("*/*.json"))


def load_outcomes(events_dir: Path) -> dict[Path, Outcome]:
    """Every folder's stated outcomes, by event file; OutcomeError for anything unusable."""
    outcomes: dict[Path, Outcome] = {}
    problems: list[str] = []
    for folder in sorted(p for p in events_dir.iterdir() if p.is_dir()):
        path = folder / OUTCOMES_FILE
        if not path.is_file():
            if any(folder.glob("*.json")):
                problems.append(f"{path} is missing")
            continue
        try:
            doc = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise OutcomeError(f"{path}: {exc}") from None
        function = doc.pop("function", None)
        parameters = doc.pop("parameters", {})
        seed = doc.pop("seed", DEFAULT_SEED)
        if not isinstance(function, str):
            problems.append(f'{path}: needs `function = "<logical id>"`')
            continue
        if not isinstance(parameters, dict) or not isinstance(seed, str):
            problems.append(f"{path}: `parameters` must be a table, `seed` a file name")
            continue
        if seed != DEFAULT_SEED and not (events_dir / seed).is_file():
            problems.append(f"{path}: no seed file {events_dir / seed}")
            continue
        overrides = tuple(sorted((str(k), str(v)) for k, v in parameters.items()))
        for name, expect in doc.items():
            event = folder / f"{name}.json"
            if not isinstance(expect, dict) or not expect:
                problems.append(f"{path}: [{name}] states nothing")
            elif not event.is_file():
                problems.append(f"{path}: [{name}] has no event file {event.name}")
            elif set(expect) - API_KEYS - FUNCTION_KEYS:
                problems.append(
                    f"{path}: [{name}] unknown keys {sorted(set(expect) - API_KEYS - FUNCTION_KEYS)}"
                )
            elif set(expect) & API_KEYS and set(expect) & FUNCTION_KEYS:
                problems.append(f"{path}: [{name}] mixes HTTP keys and result/errorType")
            else:
                outcomes[event] = Outcome(event, function, expect, overrides, seed)
    for event in event_files(events_dir):
        if event not in outcomes and (event.parent / OUTCOMES_FILE).is_file():
            problems.append(f"{event} has no stated outcome in {event.parent / OUTCOMES_FILE}")
    if problems:
        raise OutcomeError("\n".join(problems))
    return outcomes


def contains(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Where `actual` does not contain `expected` (the rules in the module doc)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where or '.'}: expected an object, got {actual!r:.200}"]
        out = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{where}.{key}: missing")
            else:
                out += contains(value, actual[key], f"{where}.{key}")
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where or '.'}: expected {len(expected)} items, got {actual!r:.200}"]
        return [p for i, e in enumerate(expected) for p in contains(e, actual[i], f"{where}[{i}]")]
    return (
        []
        if expected == actual
        else [f"{where or '.'}: expected {expected!r}, got {actual!r:.200}"]
    )


def _is_error(response: Any) -> bool:
    return isinstance(response, dict) and {"errorType", "errorMessage"} <= set(response)


def check(outcome: Outcome, response: Any) -> list[str]:
    """What is wrong with `response` (the function's output, as stdout shows it); [] if fine."""
    expect = outcome.expect
    if _is_error(response) and "errorType" not in expect:
        return [f"failed: {response['errorType']}: {response['errorMessage']:.300}"]
    if "errorType" in expect:
        if not _is_error(response):
            return [f"expected errorType {expect['errorType']}, got {response!r:.300}"]
        return contains(expect["errorType"], response["errorType"], "errorType")
    if "result" in expect:
        return contains(expect["result"], response)
    if not isinstance(response, dict) or "statusCode" not in response:
        return [f"expected an HTTP API response, got {response!r:.300}"]
    problems = contains(
        expect.get("status", response["statusCode"]), response["statusCode"], "status"
    )
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    ctype = str(headers.get("content-type", ""))
    if "content_type" in expect and not ctype.startswith(expect["content_type"]):
        problems.append(f"content_type: expected {expect['content_type']}, got {ctype}")
    if "body" in expect or "error" in expect:
        text = response.get("body") or ""
        if response.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        try:
            body = json.loads(text)
        except ValueError:
            return [*problems, f"body: not JSON: {text:.200}"]
        if "error" in expect:
            problems += contains(expect["error"], (body.get("error") or {}).get("code"), "error")
        if "body" in expect:
            problems += contains(expect["body"], body, "body")
    return problems
