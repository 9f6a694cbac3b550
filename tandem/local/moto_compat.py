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
6. DynamoDB applies each write (condition check and update) atomically, and a read sees an
   item before or after a write, never during it; moto, called from the moto server's threads,
   does neither: two `SET n = n + :one` updates could both read the old value (a lost update),
   two conditional puts could both win, and a read serialising an item while a write changed
   its attributes in place could fail with ``RuntimeError: dictionary changed size during
   iteration``. One lock around each item operation's whole request (moto's response handler:
   the backend call and the serialisation of what it returns) gives the guarantees DynamoDB has
   (``serialise_dynamodb_items``).
7. A Distributed Map worker ran its items by recursion (``_eval_pool`` calling itself for the
   next item), so a worker with more than ~1,000 items (a 1M-chunk job: 15,625 batches on 8
   workers) died of ``RecursionError`` and the Map never finished. It loops instead
   (``_distributed_worker_loop``), with the same frame and job-pool steps.
8. S3 Vectors: moto implements vector buckets, indexes and PutVectors/GetVectors/ListVectors/
   DeleteVectors, but not ``QueryVectors``. ``exact_query_vectors`` answers it with an exact
   (brute-force) k-nearest-neighbour search over the index's stored vectors, in the API's shape
   (``topK``, ``filter``, ``returnMetadata``, ``returnDistance``; ``distanceMetric`` in the
   answer). AWS's index is approximate; this one is exact, so tests can compare with numpy.
9. moto's CreateIndex drops ``metadataConfiguration``, so GetIndex never returned it and a query
   could filter on a non-filterable key; it is kept on the index (``keep_metadata_configuration``),
   and a filter naming one of those keys is a ValidationException, as on AWS.
10. An SNS subscription with protocol ``lambda`` delivers through moto's own Lambda backend,
    which runs functions in Docker. The local cloud routes each of its functions' subscriptions
    to its own Lambda service instead (``route_sns_to_lambda``; the delivery, with Lambda's
    asynchronous retries, is ``tandem.local.event_sources.SnsLambdaDelivery``).
11. ``SendTaskFailure`` dropped its ``cause`` (the response handler passed only ``error``), so a
    task failed by callback had an empty Cause. It is passed on (``_send_task_failure``).
12. A ``.waitForTaskToken`` task made one token per state, not per try: a retried task reused it,
    and, the token's endpoint still holding the first try's outcome, the retry did not wait at
    all (it failed again at once with the first failure). In Step Functions every try has its
    own token, and a token is closed once its try ends: a late ``SendTask*`` on it answers
    ``TaskTimedOut``. Each try now gets a new token, and a try's token is closed when the try
    ends (``_patch_task_tokens``). moto's own way to that error raised a ``TypeError`` (a 500),
    so ``SendTaskSuccess``/``Failure``/``Heartbeat`` are replaced by ``_task_callback``: a closed
    token (one whose try ended, or that took a success or failure already: a token takes one
    outcome), or one of an execution that ended, answers ``TaskTimedOut``; an unknown one
    ``InvalidToken``; a heartbeat of a task without ``HeartbeatSeconds`` is accepted, as in AWS.
13. Express state machines behaved as Standard ones. On AWS (botocore's API reference for each
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

import math
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
    serialise_dynamodb_items()
    add_vector_query()
    _patch_sns_lambda_delivery()
    _patch_send_task_failure()
    _patch_task_tokens()
    express_like_aws()
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


_CALLBACK_LOCK = threading.Lock()  # a token's check and its callback, one at a time


def _task_callback(backend: Any, token: str, deliver: Callable[[Any], None]) -> None:
    """Find the token's task in any execution and hand its callback endpoint to `deliver`.

    A token takes one outcome: once a SendTaskSuccess/Failure was delivered to it, any further
    callback answers TaskTimedOut at once, as in Step Functions, even before the task's state
    has finished with the first outcome (moto took every callback until then, so two duplicate
    notifications handled at the same moment both "succeeded")."""
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser.api import ExecutionStatus

    for execution in backend._get_executions():
        worker = getattr(execution, "exec_worker", None)
        endpoint = None if worker is None else worker.env.callback_pool_manager.get(token)
        if endpoint is None:
            continue
        with _CALLBACK_LOCK:
            closed = endpoint.consumer_error is not None or endpoint._outcome is not None
            if closed or execution.status != ExecutionStatus.RUNNING:
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


DYNAMODB_ITEM_OPERATIONS = (
    "get_item",
    "batch_get_item",
    "query",
    "scan",
    "transact_get_items",
    "put_item",
    "update_item",
    "delete_item",
    "batch_write_item",
    "transact_write_items",
)
_DYNAMODB_LOCK = threading.Lock()  # read by its test


def serialise_dynamodb_items(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """6. One lock around each of moto's DynamoDB item operations, from the request to the
    serialised answer (item-level atomicity of writes and reads). `patch` is `setattr` by
    default; tests pass `monkeypatch.setattr` to undo it afterwards."""
    from moto.dynamodb.responses import DynamoHandler

    for name in DYNAMODB_ITEM_OPERATIONS:
        original = getattr(DynamoHandler, name)
        if getattr(original, "_tandem_serialised", False):
            continue

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _DYNAMODB_LOCK:
                return __original(self, *args, **kwargs)

        locked._tandem_serialised = True  # type: ignore[attr-defined]
        patch(DynamoHandler, name, locked)


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


# ---------------------------------------------------------------------- S3 Vectors (7, 8)
QUERY_VECTORS_PATH = "{0}/QueryVectors$"
MAX_TOP_K = 100  # S3 Vectors' limit per QueryVectors request
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _vector_error(message: str) -> Exception:
    from moto.s3vectors.exceptions import ValidationError

    return ValidationError(message)


def _values_of(stored: Any) -> list[Any]:
    """A metadata value as the list of values it matches: an array matches any element."""
    return list(stored) if isinstance(stored, list) else [stored]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _condition(metadata: dict[str, Any], key: str, condition: Any) -> bool:
    """One key's condition: a primitive (equality) or `{"$op": operand, ...}` (all must hold)."""
    if not isinstance(condition, dict):
        condition = {"$eq": condition}
    present = key in metadata
    values = _values_of(metadata.get(key))
    for op, operand in condition.items():
        if op == "$eq":
            ok = present and operand in values
        elif op == "$ne":
            ok = not (present and operand in values)
        elif op in _COMPARISONS:
            if not _is_number(operand):
                raise _vector_error(f"Invalid filter: {op} needs a number, got {operand!r}")
            ok = present and any(_is_number(v) and _COMPARISONS[op](v, operand) for v in values)
        elif op in ("$in", "$nin"):
            if not isinstance(operand, list) or not operand:
                raise _vector_error(f"Invalid filter: {op} needs a non-empty array")
            hit = present and any(v in operand for v in values)
            ok = hit if op == "$in" else not hit
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise _vector_error("Invalid filter: $exists needs a boolean")
            ok = present == operand
        else:
            raise _vector_error(f"Invalid filter: unknown operator {op}")
        if not ok:
            return False
    return True


def filter_matches(metadata: dict[str, Any], flt: dict[str, Any]) -> bool:
    """S3 Vectors' metadata filter on one vector's metadata: keys are ANDed, `$and`/`$or` take
    non-empty arrays of filters; a missing key fails every operator but `$ne`, `$nin` and
    `$exists: false` (as in MongoDB, whose syntax the filter follows)."""
    for key, condition in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise _vector_error(f"Invalid filter: {key} needs a non-empty array of filters")
            results = [filter_matches(metadata, sub) for sub in condition]
            if not (all(results) if key == "$and" else any(results)):
                return False
        elif key.startswith("$"):
            raise _vector_error(f"Invalid filter: unknown operator {key}")
        elif not _condition(metadata, key, condition):
            return False
    return True


def _filter_keys(flt: Any) -> set[str]:
    if isinstance(flt, list):
        return set().union(*map(_filter_keys, flt)) if flt else set()
    if not isinstance(flt, dict):
        return set()
    keys: set[str] = set()
    for key, value in flt.items():
        keys |= _filter_keys(value) if key in ("$and", "$or") else {key}
    return keys


def _distance(metric: str, query: list[float], q_norm: float, vector: list[float]) -> float:
    if metric == "euclidean":
        return math.sqrt(math.fsum((a - b) ** 2 for a, b in zip(query, vector, strict=True)))
    dot = math.fsum(a * b for a, b in zip(query, vector, strict=True))
    norm = q_norm * math.sqrt(math.fsum(b * b for b in vector))
    return 1.0 - (dot / norm if norm else 0.0)  # cosine distance: 1 - cosine similarity


def exact_query_vectors(
    index: Any,
    query: list[float],
    top_k: int,
    flt: dict[str, Any] | None = None,
    return_metadata: bool = False,
    return_distance: bool = False,
) -> list[dict[str, Any]]:
    """QueryVectors, exactly: every vector of `index` (a moto `Index`) that passes `flt`,
    nearest first (ties by key), at most `top_k`. Distances are the index's metric: cosine
    distance (1 - cosine similarity) or euclidean."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise _vector_error(f"topK must be between 1 and {MAX_TOP_K}, got {top_k}")
    if len(query) != index.dimension:
        raise _vector_error(
            f"Query vector must have length {index.dimension}, but has length {len(query)}"
        )
    non_filterable = set(getattr(index, "non_filterable_metadata_keys", ()))
    if flt and _filter_keys(flt) & non_filterable:
        raise _vector_error(
            f"Invalid filter: {sorted(_filter_keys(flt) & non_filterable)} are non-filterable "
            "metadata keys"
        )
    q_norm = math.sqrt(math.fsum(a * a for a in query))
    scored = []
    for key, vector in list(index.vectors.items()):
        metadata = vector.metadata or {}
        if flt and not filter_matches(metadata, flt):
            continue
        values = vector.data[index.data_type]
        scored.append((_distance(index.distance_metric, query, q_norm, values), key, metadata))
    scored.sort(key=lambda hit: (hit[0], hit[1]))
    out = []
    for distance, key, metadata in scored[:top_k]:
        hit: dict[str, Any] = {"key": key}
        if return_distance:
            hit["distance"] = distance
        if return_metadata:
            hit["metadata"] = metadata
        out.append(hit)
    return out


def add_vector_query() -> None:
    """8 and 9: QueryVectors on moto's S3 Vectors (in process and on the moto server), and
    CreateIndex keeping `metadataConfiguration`."""
    from moto.core.responses import ActionResult
    from moto.s3vectors import responses, urls

    cls = responses.S3VectorsResponse
    if getattr(cls, _APPLIED_MARK, False):
        return
    urls.url_paths[QUERY_VECTORS_PATH] = cls.dispatch

    def query_vectors(self: Any) -> Any:
        bucket, name, arn = (
            self._get_param("vectorBucketName"),
            self._get_param("indexName"),
            self._get_param("indexArn"),
        )
        self._validate_index_params(arn, name, bucket)
        index = self.s3vectors_backend.get_index(bucket, index_name=name, index_arn=arn)
        vector = self._get_param("queryVector") or {}
        if "float32" not in vector:
            raise _vector_error("queryVector must hold float32")
        hits = exact_query_vectors(
            index,
            [float(v) for v in vector["float32"]],
            int(self._get_param("topK")),
            self._get_param("filter"),
            self._get_bool_param("returnMetadata", False),
            self._get_bool_param("returnDistance", False),
        )
        return ActionResult({"vectors": hits, "distanceMetric": index.distance_metric})

    original_create = cls.create_index

    def create_index(self: Any) -> Any:
        result = original_create(self)
        config = self._get_param("metadataConfiguration") or {}
        keys = list(config.get("nonFilterableMetadataKeys") or [])
        if keys:
            index = self.s3vectors_backend.get_index(
                self._get_param("vectorBucketName") or "",
                index_name=self._get_param("indexName"),
                index_arn=_index_arn(
                    self._get_param("vectorBucketArn"), self._get_param("indexName")
                ),
            )
            index.non_filterable_metadata_keys = keys
            index.metadata_configuration = {"nonFilterableMetadataKeys": keys}  # for GetIndex
        return result

    setattr(cls, "query_vectors", query_vectors)  # noqa: B010 (a patch, on purpose)
    setattr(cls, "create_index", create_index)  # noqa: B010
    setattr(cls, _APPLIED_MARK, True)


def _index_arn(bucket_arn: str | None, index_name: str) -> str:
    return f"{bucket_arn}/index/{index_name}" if bucket_arn else ""


EXPRESS_ARN_REFUSED = "Invalid Arn: 'Resource type not valid in this context: express'"


def _is_express_arn(arn: str) -> bool:
    parts = (arn or "").split(":")
    return len(parts) > 5 and parts[5] == "express"


def express_like_aws(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """13. Express executions as AWS runs and refuses them (see the module doc)."""
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
