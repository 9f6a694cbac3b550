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
7. A Distributed Map worker ran its items by recursion (``_eval_pool`` calling itself for the
   next item), so a worker with more than ~1,000 items (a 1M-chunk job: 15,625 batches on 8
   workers) died of ``RecursionError`` and the Map never finished. It loops instead
   (``_distributed_worker_loop``), with the same frame and job-pool steps.

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
    _patch_distributed_worker()
    serialise_dynamodb_writes()
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


def _patch_distributed_worker() -> None:
    """7. A Distributed Map worker loops over its items instead of recursing per item."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as worker,
    )

    def _distributed_worker_loop(self, job, worker_frame):
        while True:
            if job is None:
                self._env.delete_frame(worker_frame)
                return
            job_frame = worker_frame.open_inner_frame()
            self._eval_job(env=job_frame, job=job)
            worker_frame.delete_frame(job_frame)
            if isinstance(job.job_output, Exception) or self.stopped():
                self._env.delete_frame(worker_frame)
                self._job_pool.close_job(job)
                return
            next_job = self._job_pool.next_job()
            if next_job is None:
                self._env.delete_frame(worker_frame)
                self._job_pool.close_job(job)
                return
            self._job_pool.close_job(job)
            job = next_job

    setattr(worker.DistributedItemProcessorWorker, "_eval_pool", _distributed_worker_loop)  # noqa: B010


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
