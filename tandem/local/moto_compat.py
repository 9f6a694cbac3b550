"""Compatibility patches for moto 5.2.5's Step Functions interpreter (the only place we patch moto).

Gaps measured with moto 5.2.5 (docs/ARCHITECTURE.md, "The local cloud"):

1. ``arn:aws:states:::aws-sdk:sagemakerruntime:invokeEndpoint`` fails with
   ``Unknown service: 'sagemakerruntime'``: the aws-sdk task passes the Step Functions service
   name straight to boto3, whose name is ``sagemaker-runtime``.  Its errors are also named after
   the raw service name instead of Step Functions' ``SageMakerRuntime.*`` prefix.
2. The aws-sdk task pushes the boto3 response as is; ``InvokeEndpoint``'s ``Body`` is a
   ``StreamingBody`` that the interpreter cannot serialise.  Real Step Functions returns it as a
   string.
3. An error reply without ``x-amzn-RequestId`` turned into ``States.Runtime`` (see ``_from_error``).
4. A connection error (the endpoint process is down) became ``States.Runtime`` too; it is sent as
   the runtime's 503 ``ServiceUnavailable`` instead (``unreachable_as_runtime_error``).
5. A Distributed Map's ``ResultWriter.Parameters`` were evaluated against the Map's results
   instead of the state's input, so a path such as ``States.Format('jobs/{}/map-results',
   $.job_id)`` failed with ``States.Runtime`` after every child had run. They are evaluated
   against the state input, as in Step Functions (``_result_writer_eval``).
6. DynamoDB applies each write (condition check and update) atomically; moto, called from the
   moto server's threads, does not: two `SET n = n + :one` updates could both read the old
   value (a lost update), two conditional puts could both win. One lock around moto's write
   operations gives the guarantee DynamoDB has (``serialise_dynamodb_writes``).
7. Express state machines behaved as Standard ones. On AWS (botocore's API reference for each
   operation): StartExecution is not idempotent for an Express state machine (every call starts
   an execution, whatever its name), an Express execution's ARN is
   ``arn:aws:states:<region>:<account>:express:<state machine>:<name>:<id>``, and
   DescribeExecution, GetExecutionHistory, StopExecution and DescribeStateMachineForExecution do
   not answer for Express executions (``InvalidArn``), nor ListExecutions for an Express state
   machine (``StateMachineTypeNotSupported``). moto 5.2.5 deduplicated Express starts by name and
   answered all of these, so a reader depending on them would pass locally and fail on AWS.
   ``express_like_aws`` makes the local cloud answer as AWS does; ``express_executions`` is the
   local cloud's own view of them, for its inspector and tests only (no AWS API gives it).

Error names then follow Step Functions' rule ``<Service>.<ExceptionClass>[Exception]``:
a modeled error such as ``ModelError`` becomes ``SageMakerRuntime.ModelErrorException``;
an unmodeled code (e.g. ``ThrottlingException``, raised by botocore as a plain ``ClientError``)
becomes the service's generic ``SageMakerRuntime.SageMakerRuntimeException`` as in real Step
Functions; both are in the state machine's Retry list.

``apply()`` is idempotent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

_APPLIED_MARK = "_tandem_compat_applied"

# Step Functions service name -> boto3 service name, for aws-sdk integrations.
SFN_TO_BOTO_SERVICE = {"sagemakerruntime": "sagemaker-runtime"}
# lower-cased Step Functions service name -> prefix used in error names.
SERVICE_ERROR_NAMES = {"sagemakerruntime": "SageMakerRuntime"}


def _read_streams(value: Any) -> Any:
    from botocore.response import StreamingBody

    if isinstance(value, StreamingBody):
        data = value.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            return base64.b64encode(data).decode("ascii")
    if isinstance(value, dict):
        return {k: _read_streams(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_read_streams(v) for v in value]
    return value


def unreachable_as_runtime_error(ex: Exception) -> Exception:
    """The ClientError the SageMaker runtime sends when the endpoint's instance can't be reached.

    On AWS the caller never sees the instance's connection: the runtime answers 503
    ServiceUnavailable, which the state machine retries.  Locally the interpreter's boto3 call
    reaches the endpoint process directly (one attempt, no SDK retries), so a dead or restarting
    process raises a botocore connection error, which moto turns into ``States.Runtime``: not
    retried, the Map child fails.  Translated here, the task fails with
    ``SageMakerRuntime.ServiceUnavailableException`` as on AWS.
    """
    from botocore.errorfactory import ClientExceptionsFactory
    from botocore.session import get_session

    model = get_session().get_service_model("sagemaker-runtime")
    exceptions: Any = ClientExceptionsFactory().create_client_exceptions(model)
    cls: type[Exception] = exceptions.ServiceUnavailable
    response: Any = {
        "Error": {
            "Code": "ServiceUnavailable",
            "Message": f"the endpoint's instance could not be reached: {type(ex).__name__}: {ex}",
        },
        "ResponseMetadata": {"HTTPStatusCode": 503, "RequestId": "local"},
    }
    return cls(response, "InvokeEndpoint")


def apply() -> bool:
    """Patch moto's aws-sdk task service. Returns True when it patched, False if already done."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    cls = aws_sdk.StateTaskServiceAwsSdk
    if getattr(cls, _APPLIED_MARK, False):
        return False

    overrides = dict(cls._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES)
    overrides.update(SFN_TO_BOTO_SERVICE)
    setattr(cls, "_SERVICE_NAME_SFN_TO_BOTO_OVERRIDES", overrides)  # noqa: B010 (Final in moto)
    aws_sdk._SERVICE_ERROR_NAMES.update(SERVICE_ERROR_NAMES)

    original_eval = cls._eval_service_task

    def _eval_service_task(self, env, *args, **kwargs):
        try:
            original_eval(self, env, *args, **kwargs)
        except (BotoConnectionError, HTTPClientError) as ex:
            # 4. the endpoint process is gone (down, restarting): see unreachable_as_runtime_error
            if self.resource.api_name.lower() not in SFN_TO_BOTO_SERVICE:
                raise
            raise unreachable_as_runtime_error(ex) from ex
        env.stack[-1] = _read_streams(env.stack[-1])

    setattr(cls, "_eval_service_task", _eval_service_task)  # noqa: B010 (a patch, on purpose)

    # 3. an error reply without x-amzn-RequestId (any non-AWS server) made _from_error raise
    #    KeyError('RequestId'), turning a retryable service error into States.Runtime.
    original_from_error = cls._from_error

    def _from_error(self, env, ex):
        response = getattr(ex, "response", None)
        if isinstance(response, dict):
            meta = response.setdefault("ResponseMetadata", {})
            meta.setdefault("RequestId", "local")
            meta.setdefault("HTTPStatusCode", 0)
            response.setdefault("Error", {}).setdefault("Message", "")
        return original_from_error(self, env, ex)

    setattr(cls, "_from_error", _from_error)  # noqa: B010 (a patch, on purpose)
    _patch_result_writer()
    serialise_dynamodb_writes()
    express_like_aws()
    setattr(cls, _APPLIED_MARK, True)
    return True


DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
_DYNAMODB_LOCK = threading.Lock()  # read by its test


def serialise_dynamodb_writes(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """6. One lock around moto's DynamoDB writes (item-level atomicity). `patch` is `setattr`
    by default; tests pass `monkeypatch.setattr` to undo it afterwards."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in DYNAMODB_WRITES:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_tandem_serialised", False):
            continue

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _DYNAMODB_LOCK:
                return __original(self, *args, **kwargs)

        locked._tandem_serialised = True  # type: ignore[attr-defined]
        patch(DynamoDBBackend, name, locked)


def _patch_result_writer() -> None:
    """5. ResultWriter.Parameters read the state input (moto read the Map's results)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer import (
        result_writer_decl,
    )

    def _result_writer_eval(self, env):
        results = env.stack.pop()
        env.stack.append(env.states.get_input())  # what the Parameters' paths read
        self.parargs.eval(env=env)
        parameters = env.stack.pop()
        env.stack.pop()
        env.stack.append(results)  # what moto's S3 writer expects under its parameters
        env.stack.append(parameters)
        self.resource_eval.eval_resource(env=env)

    setattr(result_writer_decl.ResultWriter, "_eval_body", _result_writer_eval)  # noqa: B010


def is_applied() -> bool:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    return bool(getattr(aws_sdk.StateTaskServiceAwsSdk, _APPLIED_MARK, False))


def adapt_definition(definition: str) -> tuple[str, list[str]]:
    """Rewrite the parts of an ASL definition that moto 5.2.5's parser rejects.

    Returns (definition, notes). Only fields moto's grammar cannot parse are changed:
    - ``ToleratedFailurePercentage`` on a Distributed Map (a syntax error in moto's grammar): dropped;
      our Map children catch every error themselves, so no child fails and the value is moot.
    - ``ProcessorConfig.ExecutionType: EXPRESS`` (moto only accepts STANDARD): children run as
      STANDARD locally; the semantics that matter here (the children's states) are the same.
    """
    import json

    doc = json.loads(definition)
    notes: list[str] = []

    def walk(states: dict[str, Any], path: str) -> None:
        for name, state in states.items():
            if state.get("Type") == "Map":
                if "ToleratedFailurePercentage" in state:
                    state.pop("ToleratedFailurePercentage")
                    notes.append(f"{path}{name}: dropped ToleratedFailurePercentage")
                proc = state.get("ItemProcessor") or state.get("Iterator") or {}
                cfg = proc.get("ProcessorConfig", {})
                if cfg.get("ExecutionType") == "EXPRESS":
                    cfg["ExecutionType"] = "STANDARD"
                    notes.append(f"{path}{name}: ExecutionType EXPRESS -> STANDARD")
                walk(proc.get("States", {}), f"{path}{name}/")
            if state.get("Type") == "Parallel":
                for i, br in enumerate(state.get("Branches", [])):
                    walk(br.get("States", {}), f"{path}{name}[{i}]/")

    walk(doc.get("States", {}), "")
    return json.dumps(doc), notes


EXPRESS_ARN_REFUSED = "Invalid Arn: 'Resource type not valid in this context: express'"


def _is_express_arn(arn: str) -> bool:
    parts = (arn or "").split(":")
    return len(parts) > 5 and parts[5] == "express"


def express_like_aws(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """7. Express executions as AWS runs and refuses them (see the module doc)."""
    import copy
    import datetime
    import json
    import uuid

    from moto.stepfunctions.exceptions import AWSError, InvalidArn
    from moto.stepfunctions.parser.backend.execution import Execution
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend as Backend

    if getattr(Backend.start_execution, "_tandem_express", False):
        return

    class StateMachineTypeNotSupported(AWSError):
        TYPE = "StateMachineTypeNotSupported"
        STATUS = 400

    original_start = Backend.start_execution

    def start_execution(
        self, state_machine_arn, name=None, execution_input=None, trace_header=None
    ):
        state_machine = self.describe_state_machine(state_machine_arn)
        if state_machine.type != "EXPRESS":
            return original_start(self, state_machine_arn, name, execution_input, trace_header)
        # moto 5.2.5's start_execution for a Standard state machine, less the name idempotency
        # and with an Express ARN (a fresh id on every start)
        input_data = "{}" if execution_input is None else execution_input
        json.loads(input_data)
        name = name or str(uuid.uuid4())
        arn = (
            f"arn:{self.partition}:states:{self.region_name}:{self.account_id}:express:"
            f"{state_machine.name}:{name}:{uuid.uuid4()}"
        )
        clone = copy.deepcopy(
            state_machine,
            {id(state_machine.executions): [], id(state_machine.backend): state_machine.backend},
        )
        execution = Execution(
            name=name,
            sm_type=clone.sm_type,
            role_arn=clone.roleArn,
            exec_arn=arn,
            account_id=self.account_id,
            region_name=self.region_name,
            state_machine=clone,
            start_date=datetime.datetime.now(tz=datetime.UTC),
            cloud_watch_logging_session=None,
            input_data=input_data,
            trace_header=trace_header,
            activity_store={},
        )
        state_machine.executions.append(execution)
        execution.start()
        return execution

    start_execution._tandem_express = True  # type: ignore[attr-defined]
    patch(Backend, "start_execution", start_execution)

    def refusing(method: str) -> None:
        original = getattr(Backend, method)

        def refuse_express(self: Any, execution_arn: str, *args: Any, **kwargs: Any) -> Any:
            if _is_express_arn(execution_arn):
                raise InvalidArn(EXPRESS_ARN_REFUSED)
            return original(self, execution_arn, *args, **kwargs)

        patch(Backend, method, refuse_express)

    for method in (
        "describe_execution",
        "get_execution_history",
        "stop_execution",
        "describe_state_machine_for_execution",
    ):
        refusing(method)

    original_list = Backend.list_executions

    def list_executions(self: Any, state_machine_arn: str, *args: Any, **kwargs: Any) -> Any:
        if self.describe_state_machine(state_machine_arn).type == "EXPRESS":
            raise StateMachineTypeNotSupported(
                "This operation is not supported by this type of state machine"
            )
        return original_list(self, state_machine_arn, *args, **kwargs)

    patch(Backend, "list_executions", list_executions)


def express_executions(state_machine_arn: str) -> list[dict[str, str]]:
    """The local cloud's Express executions of a state machine: `{executionArn, name, status}`
    (the local cloud's own bookkeeping; AWS answers no such question)."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    out = []
    for account in list(stepfunctions_parser_backends.values()):
        for backend in list(account.values()):
            for sm in list(backend.state_machines):
                if sm.arn != state_machine_arn:
                    continue
                for ex in list(sm.executions):
                    status = getattr(ex, "exec_status", None)  # the interpreter's Execution
                    out.append(
                        {
                            "executionArn": str(getattr(ex, "exec_arn", "")),
                            "name": ex.name,
                            "status": str(getattr(status, "value", status)),
                        }
                    )
    return out
