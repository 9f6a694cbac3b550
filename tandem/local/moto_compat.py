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
7. An SNS subscription with protocol ``lambda`` delivers through moto's own Lambda backend,
   which runs functions in Docker. The local cloud routes each of its functions' subscriptions
   to its own Lambda service instead (``route_sns_to_lambda``; the delivery, with Lambda's
   asynchronous retries, is ``tandem.local.event_sources.SnsLambdaDelivery``).
8. ``SendTaskFailure`` dropped its ``cause`` (the response handler passed only ``error``), so a
   task failed by callback had an empty Cause. It is passed on (``_send_task_failure``).
9. A ``.waitForTaskToken`` task made one token per state, not per try: a retried task reused it,
   and, the token's endpoint still holding the first try's outcome, the retry did not wait at
   all (it failed again at once with the first failure). In Step Functions every try has its
   own token, and a token is closed once its try ends: a late ``SendTask*`` on it answers
   ``TaskTimedOut``. Each try now gets a new token, and a try's token is closed when the try
   ends (``_patch_task_tokens``). moto's own way to that error raised a ``TypeError`` (a 500),
   so ``SendTaskSuccess``/``Failure``/``Heartbeat`` are replaced by ``_task_callback``: a closed
   token, or one of an execution that ended, answers ``TaskTimedOut``; an unknown one
   ``InvalidToken``; a heartbeat of a task without ``HeartbeatSeconds`` is accepted, as in AWS.

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
    _patch_sns_lambda_delivery()
    _patch_send_task_failure()
    _patch_task_tokens()
    setattr(cls, _APPLIED_MARK, True)
    return True


# ---------------------------------------------------------------------- 7. SNS -> Lambda
# function ARN -> the local cloud's delivery for it: called with (subscription ARN, topic ARN,
# message id, subject, message) and expected to return at once (SNS invokes asynchronously).
SnsDelivery = Callable[[str, str, str, "str | None", str], None]
_SNS_LAMBDA_ROUTES: dict[str, SnsDelivery] = {}


def route_sns_to_lambda(function_arn: str, deliver: SnsDelivery | None) -> None:
    """Deliver this function's SNS subscriptions with `deliver` (None removes the route)."""
    if deliver is None:
        _SNS_LAMBDA_ROUTES.pop(function_arn, None)
    else:
        _SNS_LAMBDA_ROUTES[function_arn] = deliver


def _patch_sns_lambda_delivery() -> None:
    from moto.sns.models import Subscription

    original = Subscription.publish

    def publish(self: Any, message: str, message_id: str, *args: Any, **kwargs: Any) -> None:
        deliver = _SNS_LAMBDA_ROUTES.get(self.endpoint) if self.protocol == "lambda" else None
        if deliver is None:
            return original(self, message, message_id, *args, **kwargs)
        subject = kwargs.get("subject", args[0] if args else None)
        deliver(self.arn, self.topic.arn, message_id, subject, message)
        return None

    setattr(Subscription, "publish", publish)  # noqa: B010 (a patch, on purpose)


# ---------------------------------------------------------------------- 8. SendTaskFailure
def _patch_send_task_failure() -> None:
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"),
            error=self._get_param("error"),
            cause=self._get_param("cause"),
        )
        return EmptyResult()

    setattr(StepFunctionResponse, "send_task_failure", send_task_failure)  # noqa: B010


# ---------------------------------------------------------------------- 9. a token per try
def _patch_task_tokens() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback_task,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
        ResourceCondition,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackConsumerTimeout

    cls = callback_task.StateTaskServiceCallback
    original = cls._eval_execution

    def _eval_execution(self: Any, env: Any) -> None:
        if self.resource.condition != ResourceCondition.WaitForTaskToken:
            return original(self, env)
        context = env.states.context_object
        if context.context_object_data["State"]["RetryCount"] > 0:  # a retry: its own token
            env.callback_pool_manager.add(context.update_task_token())
        token = context.context_object_data["Task"]["Token"]
        try:
            return original(self, env)
        finally:  # the try is over: its token is closed (a late callback gets TaskTimedOut)
            endpoint = env.callback_pool_manager.get(token)
            if endpoint is not None:
                endpoint.report(CallbackConsumerTimeout())

    setattr(cls, "_eval_execution", _eval_execution)  # noqa: B010 (a patch, on purpose)

    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    setattr(StepFunctionsParserBackend, "send_task_success", _send_task_success)  # noqa: B010
    setattr(StepFunctionsParserBackend, "send_task_failure", _send_task_failure)  # noqa: B010
    setattr(StepFunctionsParserBackend, "send_task_heartbeat", _send_task_heartbeat)  # noqa: B010


def _task_callback(backend: Any, token: str, deliver: Callable[[Any], None]) -> None:
    """Find the token's task in any execution and hand its callback endpoint to `deliver`."""
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser.api import ExecutionStatus

    for execution in backend._get_executions():
        worker = getattr(execution, "exec_worker", None)
        endpoint = None if worker is None else worker.env.callback_pool_manager.get(token)
        if endpoint is None:
            continue
        if endpoint.consumer_error is not None or execution.status != ExecutionStatus.RUNNING:
            raise AWSError(
                "Task Timed Out: 'Provided task does not exist anymore'", "TaskTimedOut", 400
            )
        deliver(endpoint)
        return
    raise AWSError("Invalid Token: 'Invalid token'", "InvalidToken", 400)


def _send_task_success(self: Any, task_token: str, outcome: str) -> None:
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackOutcomeSuccess

    _task_callback(
        self, task_token, lambda e: e.notify(CallbackOutcomeSuccess(task_token, outcome))
    )


def _send_task_failure(
    self: Any, task_token: str, error: str | None = None, cause: str | None = None
) -> None:
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackOutcomeFailure

    _task_callback(
        self, task_token, lambda e: e.notify(CallbackOutcomeFailure(task_token, error, cause))
    )


def _send_task_heartbeat(self: Any, task_token: str) -> None:
    _task_callback(self, task_token, lambda e: e.notify_heartbeat())


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
