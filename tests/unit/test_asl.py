"""statemachine/pipeline.asl.json: structure, retry classes, and the Step Functions limits;
statemachine/express.asl.json: the same steps for small jobs, and nothing Express cannot run.

The limits test computes, from the definition's own numbers, the worst case of a 1,000,000-chunk
job: history events of the parent execution and the largest state payload, and shows both fit
(25,000 events, 256 KiB). The definition serves both endpoint modes; `rendered(mode)` is it as
the template's DefinitionSubstitutions make it (EndpointMode=realtime|async).

The two definitions stay one where they share states by a test, not a generator: every state the
Express workflow has under a Standard state's name must equal it, and only the states Express
needs of its own (its Map-mode Choice, and the end of a job it does not run) may differ. The one
documented difference inside a shared state: Express's Map child is Standard's real-time child
without the async task (`without_async`): no InvokeEndpointAsync state, no Catch to it, no async
limits in the ItemSelector, StartAt InvokeEndpoint (Express runs no callback task; EndpointMode=
async sends every job to Standard). A change to a shared step made in one file only fails here,
and a change Express cannot take (a callback task in the Map child) fails the second test
instead of being copied blindly.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse
from tandem_common import contracts, errors
from tandem_common.contracts import EXPRESS_MAX_DURATION_S

from tandem.local.template import LocalTemplate

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT_TASK = "arn:aws:states:::aws-sdk:sagemakerruntime:invokeEndpoint"
CALLBACK_TASK = "arn:aws:states:::lambda:invoke.waitForTaskToken"
MAPS = ("EmbedBatches", "EmbedBatchesDistributed")
TRANSIENT = {
    "SageMakerRuntime.ThrottlingException",
    "SageMakerRuntime.ServiceUnavailableException",
    "SageMakerRuntime.InternalFailureException",
}
HISTORY_LIMIT = 25_000
STATE_LIMIT = 256 * 1024
DEFAULT_BATCH_SIZE = 64
INLINE_MAP_MAX_BATCHES = 100  # preprocess's default (template: INLINE_MAP_MAX_BATCHES)
MAX_ERROR_BYTES = 1024  # the endpoint caps its error messages well below this


EXPRESS_ONLY = {"ChooseMapMode", "NotRunHere"}  # the Express definition's own states


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return json.loads((ROOT / "statemachine/pipeline.asl.json").read_text())


@pytest.fixture(scope="module")
def express() -> dict[str, Any]:
    return json.loads((ROOT / "statemachine/express.asl.json").read_text())


def rendered(mode: str) -> dict[str, Any]:
    """The definition as deployed with EndpointMode=`mode` (the template's substitutions)."""
    tpl = LocalTemplate(ROOT / "template.yaml", overrides={"EndpointMode": mode})
    return dict(json.loads(tpl.state_machine_definition("PipelineStateMachine")))


def _reachable(block: dict[str, Any]) -> set[str]:
    seen, todo = set(), [block["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = block["States"][name]
        todo += [t for t in (state.get("Next"), state.get("Default")) if t]
        todo += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
    return seen


def without_async(state: dict[str, Any]) -> dict[str, Any]:
    """A Standard state as Express runs it: a Map's child without EndpointMode=async's task (the
    only difference the two definitions may have in a state they share)."""
    state = json.loads(json.dumps(state))
    processor = state.get("ItemProcessor")
    if processor is None:
        return state
    state["ItemSelector"].pop("async")
    processor["StartAt"] = "InvokeEndpoint"
    del processor["States"]["InvokeEndpointAsync"]
    invoke = processor["States"]["InvokeEndpoint"]
    invoke["Catch"] = [c for c in invoke["Catch"] if c["Next"] != "InvokeEndpointAsync"]
    invoke.pop("Comment")  # Standard's speaks of the substituted StartAt
    return state


def _walk(states: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, state in states.items():
        found.append((name, state))
        if "ItemProcessor" in state:
            found += _walk(state["ItemProcessor"]["States"])
    return found


def _check_transitions(block: dict[str, Any]) -> None:
    names = set(block["States"])
    assert block["StartAt"] in names | {"${EndpointStep}"}  # substituted by the template
    for state in block["States"].values():
        targets = [state.get("Next"), state.get("Default")]
        targets += [c["Next"] for c in state.get("Choices", [])]
        targets += [c["Next"] for c in state.get("Catch", [])]
        assert {t for t in targets if t} <= names
        assert state.get("End") or state["Type"] in ("Fail", "Choice", "Succeed") or "Next" in state
        if "ItemProcessor" in state:
            _check_transitions(state["ItemProcessor"])


def test_every_transition_targets_an_existing_state(
    asl: dict[str, Any], express: dict[str, Any]
) -> None:
    _check_transitions(asl)
    _check_transitions(express)


def test_express_runs_the_standard_steps(asl: dict[str, Any], express: dict[str, Any]) -> None:
    shared = set(express["States"]) - EXPRESS_ONLY
    assert shared == {"Preprocess", "EmbedBatches", "Deliver", "RecordFailure", "JobFailed"}
    for name in sorted(shared):
        assert express["States"][name] == without_async(asl["States"][name]), name
    assert express["StartAt"] == asl["StartAt"] == "Preprocess"
    # only an inline job runs its Map here; preprocess handed anything else to Standard
    choose = express["States"]["ChooseMapMode"]
    assert choose["Choices"] == [
        {"Variable": "$.mode", "StringEquals": "inline", "Next": "EmbedBatches"}
    ]
    assert express["States"][choose["Default"]]["Type"] == "Succeed"
    # preprocess learns which execution runs it (an Express one may hand the job over)
    payload = asl["States"]["Preprocess"]["Parameters"]["Payload"]
    assert payload == {"job_id.$": "$.job_id", "execution_arn.$": "$$.Execution.Id"}


def test_express_holds_nothing_express_cannot_run(express: dict[str, Any]) -> None:
    # no Distributed Map parent (ItemReader/ResultWriter, DISTRIBUTED mode), no .sync or
    # callback tasks, and a timeout within Express's 5 minutes
    for _, state in _walk(express["States"]):
        resource = state.get("Resource", "")
        assert not resource.endswith((".sync", ".sync:2", ".waitForTaskToken")), resource
        assert "ItemReader" not in state and "ResultWriter" not in state
        mode = state.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode", "INLINE")
        assert mode == "INLINE"
    assert express["TimeoutSeconds"] <= EXPRESS_MAX_DURATION_S
    assert "InvokeEndpointAsync" not in {name for name, _ in _walk(express["States"])}


def test_the_template_runs_each_definition_on_its_type() -> None:
    resources = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]
    for logical_id, kind, path in [
        ("PipelineStateMachine", "STANDARD", "statemachine/pipeline.asl.json"),
        ("ExpressStateMachine", "EXPRESS", "statemachine/express.asl.json"),
    ]:
        props = resources[logical_id]["Properties"]
        assert props["Type"] == kind and props["DefinitionUri"] == path
        used = set(re.findall(r"\$\{(\w+)\}", (ROOT / path).read_text()))
        assert used == set(props["DefinitionSubstitutions"]), logical_id


@pytest.mark.parametrize(
    ("mode", "start", "resource", "children"),
    [
        ("realtime", "InvokeEndpoint", "arn:aws:states:::lambda:invoke", "EXPRESS"),
        ("async", "InvokeEndpointAsync", CALLBACK_TASK, "STANDARD"),
    ],
)
def test_one_definition_serves_both_modes_every_state_reachable(
    mode: str, start: str, resource: str, children: str
) -> None:
    doc = rendered(mode)
    assert "${" not in json.dumps(doc)
    for name in MAPS:
        processor = doc["States"][name]["ItemProcessor"]
        assert processor["StartAt"] == start
        # Step Functions refuses a definition with a state nothing reaches: both modes' tasks
        # stay reachable (the other mode's through a Catch on an error nothing raises)
        assert _reachable(processor) == set(processor["States"]), (mode, name)
        assert processor["States"]["InvokeEndpointAsync"]["Resource"] == resource
    # an Express child cannot wait on a task token: async mode's children run Standard
    distributed = doc["States"]["EmbedBatchesDistributed"]["ItemProcessor"]["ProcessorConfig"]
    assert distributed == {"Mode": "DISTRIBUTED", "ExecutionType": children}
    assert _reachable(doc) == set(doc["States"])


def test_the_async_step_waits_on_a_token_bounded_by_heartbeat_and_timeout(
    asl: dict[str, Any],
) -> None:
    for name in MAPS:
        task = asl["States"][name]["ItemProcessor"]["States"]["InvokeEndpointAsync"]
        payload = task["Parameters"]["Payload"]
        assert payload["task_token.$"] == "$$.Task.Token"
        assert payload["retry.$"] == "$$.State.RetryCount"  # each try its own InferenceId
        assert payload["request.$"] == "$.request"  # the claim-check body, nothing more
        assert task["ResultPath"] is None
        assert task["HeartbeatSecondsPath"] == "$.async.heartbeat_s"
        assert task["TimeoutSecondsPath"] == "$.async.timeout_s"
        limits = asl["States"][name]["ItemSelector"]["async"]
        assert limits == {
            "heartbeat_s.$": "States.StringToJson('${AsyncHeartbeatSeconds}')",
            "timeout_s.$": "States.StringToJson('${AsyncTaskTimeoutSeconds}')",
        }
        assert task["Catch"][-1] == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.error",
            "Next": "CollectBatch",
        }
        assert task["Next"] == "CollectBatch"


def test_the_async_step_retries_by_class_like_the_real_time_one(asl: dict[str, Any]) -> None:
    task = asl["States"]["EmbedBatches"]["ItemProcessor"]["States"]["InvokeEndpointAsync"]
    retried = {e: r for r in task["Retry"] for e in r["ErrorEquals"]}
    # the names the submit function raises and the complete function fails a task with
    assert retried[errors.EndpointThrottled.__name__]["MaxAttempts"] >= 3
    assert errors.EndpointUnavailable.__name__ in retried
    assert retried[contracts.ASYNC_SERVER_ERROR]["MaxAttempts"] == 3  # as the 5xx rounds
    for name in (contracts.ASYNC_INFERENCE_FAILED, contracts.ASYNC_INFERENCE_LOST):
        assert name in retried
    assert {"States.Timeout", "States.HeartbeatTimeout"} <= set(retried)  # a lost callback
    # a 4xx is the batch's failure: never retried
    assert contracts.ASYNC_CLIENT_ERROR not in retried
    assert errors.EndpointRejected.__name__ not in retried
    for rule in task["Retry"]:
        assert rule["BackoffRate"] > 1 and rule["JitterStrategy"] == "FULL"
        assert rule["MaxDelaySeconds"] <= 60


def test_the_gpu_step_calls_the_endpoint_directly_with_claim_check_bodies(
    asl: dict[str, Any],
) -> None:
    invokes = [s for _, s in _walk(asl["States"]) if s.get("Resource") == ENDPOINT_TASK]
    assert len(invokes) == 2  # inline and distributed Map (real-time mode)
    for task in invokes:
        assert task["Parameters"]["Body.$"] == "States.JsonToString($.request)"
        # the endpoint's answer never enters the state: only when the call began (batch latency)
        assert task["ResultSelector"] == {"sent_at.$": "$$.State.EnteredTime"}
        assert task["ResultPath"] == "$.timing"
    for name in ("EmbedBatches", "EmbedBatchesDistributed"):
        request = asl["States"][name]["ItemSelector"]["request"]
        assert set(request) == {"inputs_uri.$", "outputs_uri.$"}
    # no Lambda waits on the GPU: in real-time mode the only Lambda a Map child runs comes after
    # the endpoint answered; in async mode the submit Lambda returns at once (the task token
    # waits, not the Lambda)
    for name in ("EmbedBatches", "EmbedBatchesDistributed"):
        child = asl["States"][name]["ItemProcessor"]["States"]
        lambdas = [n for n, s in child.items() if "lambda" in s.get("Resource", "")]
        assert lambdas == ["CollectBatch"]
        assert child["InvokeEndpointAsync"]["Resource"] == "${AsyncSubmitResource}"


def test_transient_errors_retry_with_backoff_and_jitter(asl: dict[str, Any]) -> None:
    for _, task in _walk(asl["States"]):
        if task.get("Resource") != ENDPOINT_TASK:
            continue
        (retry,) = task["Retry"]
        assert set(retry["ErrorEquals"]) >= TRANSIENT
        assert "SageMakerRuntime.ModelErrorException" not in retry["ErrorEquals"]
        assert retry["BackoffRate"] > 1
        assert retry["JitterStrategy"] == "FULL"
        assert retry["MaxDelaySeconds"] <= 60


def test_inline_and_distributed_children_are_one_definition(asl: dict[str, Any]) -> None:
    # Only the processor mode differs: errors are treated the same way in both Maps.
    inline = asl["States"]["EmbedBatches"]
    distributed = asl["States"]["EmbedBatchesDistributed"]
    for key in ("StartAt", "States"):
        assert inline["ItemProcessor"][key] == distributed["ItemProcessor"][key]
    assert inline["ItemSelector"] == distributed["ItemSelector"]
    assert inline["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert distributed["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "${MapChildExecutionType}",  # EXPRESS, or STANDARD in async mode
    }
    assert inline["ResultPath"] is None and distributed["ResultPath"] is None  # nothing in state


@pytest.mark.parametrize("name", ["EmbedBatches", "EmbedBatchesDistributed"])
def test_model_errors_retry_only_when_the_container_answered_5xx(
    asl: dict[str, Any], name: str
) -> None:
    child = asl["States"][name]["ItemProcessor"]["States"]
    catch = {tuple(c["ErrorEquals"]): c["Next"] for c in child["InvokeEndpoint"]["Catch"]}
    assert catch[("SageMakerRuntime.ModelErrorException",)] == "IsServerError"
    assert catch[("States.ALL",)] == "CollectBatch"  # records the batch's failure
    assert catch[("Tandem.EndpointModeIsAsync",)] == "InvokeEndpointAsync"  # never raised
    choice = child["IsServerError"]
    (rule,) = choice["Choices"]
    matches = [c for c in rule["And"] if "StringMatches" in c]
    assert matches[0]["StringMatches"] == "*Received server error*"
    assert choice["Default"] == "CollectBatch"  # a 4xx is that batch's failure, not a retry
    assert [c["ResultPath"] for c in child["InvokeEndpoint"]["Catch"]] == ["$.error"] * 3


def test_every_batch_ends_in_the_collect_step(asl: dict[str, Any]) -> None:
    child = asl["States"]["EmbedBatches"]["ItemProcessor"]["States"]
    collect = child["CollectBatch"]
    assert collect["Resource"] == "arn:aws:states:::lambda:invoke"
    assert collect["Parameters"] == {"FunctionName": "${CollectFunctionArn}", "Payload.$": "$"}
    assert collect["ResultSelector"] == {"index.$": "$.Payload.index", "ok.$": "$.Payload.ok"}
    assert child["InvokeEndpoint"]["Next"] == "CollectBatch" and collect.get("End")
    # if collect itself keeps failing, the batch is left for deliver, which collects it
    assert collect["Catch"][0]["Next"] == "BatchNotCollected"
    assert asl["States"]["Deliver"]["Parameters"]["Payload"] == {"job_id.$": "$.job_id"}


def test_unhandled_errors_reach_the_fail_handler(asl: dict[str, Any]) -> None:
    for name in ("Preprocess", "EmbedBatches", "EmbedBatchesDistributed", "Deliver"):
        catches = asl["States"][name]["Catch"]
        assert {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.error",
            "Next": "RecordFailure",
        } in (catches)
    assert asl["States"]["RecordFailure"]["Next"] == "JobFailed"
    assert asl["States"]["JobFailed"]["Type"] == "Fail"


def _task_events(task: dict[str, Any]) -> int:
    """Worst-case history events of one Task state: entered/exited + 3 per attempt."""
    attempts = 1 + sum(r.get("MaxAttempts", 3) for r in task.get("Retry", []))
    return 2 + 3 * attempts


def _iteration_events(processor: dict[str, Any], mode: str = "realtime") -> int:
    """Worst case of one Map iteration: every retry spent, every 5xx round taken. In async mode
    a try of the callback task records one event more (TaskSubmitted)."""
    states = processor["States"]
    if mode == "async":
        task = states["InvokeEndpointAsync"]
        attempts = 1 + sum(r.get("MaxAttempts", 3) for r in task.get("Retry", []))
        collect = _task_events(states["CollectBatch"]) + 2
        return 2 + 2 + 4 * attempts + collect
    invoke = _task_events(states["InvokeEndpoint"])
    rounds = 1
    if "IsServerError" in states:
        (rule,) = states["IsServerError"]["Choices"]
        limit = next(c["NumericLessThan"] for c in rule["And"] if "NumericLessThan" in c)
        rounds += limit
    loop = 2 * 3  # Choice, Pass, Wait: entered + exited each
    collect = _task_events(states["CollectBatch"]) + 2  # then, at worst, BatchNotCollected
    choice = 2 if "IsServerError" in states else 0
    return 2 + rounds * invoke + (rounds - 1) * loop + choice + collect


def _batch_entry_bytes() -> int:
    job = "0" * 36
    bucket = "b" * 63
    entry = {
        "index": 99_999,
        "inputs_uri": f"s3://{bucket}/jobs/{job}/batches/batch-99999.jsonl",
        "outputs_uri": f"s3://{bucket}/jobs/{job}/outputs/batch-99999.npy",
    }
    return len(json.dumps(entry))


def worst_case(
    asl: dict[str, Any], chunks: int, batch_size: int, mode: str = "realtime"
) -> dict[str, int]:
    batches = math.ceil(chunks / batch_size)
    distributed = batches > INLINE_MAP_MAX_BATCHES
    top = asl["States"]
    fixed = 2  # ExecutionStarted / ExecutionSucceeded|Failed
    fixed += _task_events(top["Preprocess"]) + 2 + _task_events(top["Deliver"])
    fixed += _task_events(top["RecordFailure"]) + 2
    if distributed:
        # The parent records the Map Run, not its items; each child is its own Express execution.
        history = fixed + 6 + 2
        state = 1024  # preprocess output without the batch list: ids, counts, keys
        child = _iteration_events(top["EmbedBatchesDistributed"]["ItemProcessor"], mode)
    else:
        per_item = _iteration_events(top["EmbedBatches"]["ItemProcessor"], mode)
        history = fixed + 4 + batches * per_item
        # the Map's ResultPath is null: its input (preprocess's output, with the batch list)
        # passes through, and no iteration result is kept
        assert top["EmbedBatches"]["ResultPath"] is None
        state = batches * _batch_entry_bytes() + 1024
        child = 0
    return {
        "batches": batches,
        "distributed": int(distributed),
        "history": history,
        "state_bytes": state,
        "child_history": child,
    }


@pytest.mark.parametrize("mode", ["realtime", "async"])
def test_a_million_chunk_job_fits_the_step_functions_limits(asl: dict[str, Any], mode: str) -> None:
    big = worst_case(asl, 1_000_000, DEFAULT_BATCH_SIZE, mode)
    assert big["distributed"] == 1
    assert big["history"] < HISTORY_LIMIT
    assert big["state_bytes"] < STATE_LIMIT
    assert big["child_history"] < HISTORY_LIMIT


@pytest.mark.parametrize("mode", ["realtime", "async"])
def test_the_largest_inline_job_fits_too(asl: dict[str, Any], mode: str) -> None:
    largest_inline = worst_case(
        asl, INLINE_MAP_MAX_BATCHES * DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE, mode
    )
    assert largest_inline["distributed"] == 0
    assert largest_inline["history"] < HISTORY_LIMIT, largest_inline
    assert largest_inline["state_bytes"] < STATE_LIMIT, largest_inline
    # ...and one more batch switches to the Distributed Map.
    assert worst_case(asl, (INLINE_MAP_MAX_BATCHES + 1) * DEFAULT_BATCH_SIZE, 64)["distributed"]


def test_the_history_model_counts_retries(asl: dict[str, Any]) -> None:
    # Guard against a model that cannot fail: removing the retries must shrink the estimate.
    stripped = json.loads(json.dumps(asl))
    inline = stripped["States"]["EmbedBatches"]["ItemProcessor"]["States"]["InvokeEndpoint"]
    inline["Retry"] = []
    assert worst_case(stripped, 6400, 64)["history"] < worst_case(asl, 6400, 64)["history"]
    callback = stripped["States"]["EmbedBatches"]["ItemProcessor"]["States"]["InvokeEndpointAsync"]
    callback["Retry"] = []
    assert (
        worst_case(stripped, 6400, 64, "async")["history"]
        < worst_case(asl, 6400, 64, "async")["history"]
    )
