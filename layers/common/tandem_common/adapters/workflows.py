"""Step Functions: starting a job's execution and asking after it (the one place that does).

Two state machines run jobs: the Standard workflow, and the Express one for small jobs (same
steps, no Distributed Map). Both name the execution by the job id, but only Standard executions
are idempotent by name: StartExecution on an Express state machine starts a new execution every
time, and DescribeExecution/GetExecutionHistory do not answer for Express executions at all. So
an Express job's status lives only in the jobs table, and `status()` refuses Express ARNs.
"""

from __future__ import annotations

import json
from typing import Any

from tandem_common.adapters import aws
from tandem_common.contracts import (
    Workflow,
    execution_arn,
    execution_name,
    is_express_execution,
)
from tandem_common.settings import Settings


class Workflows:
    """The jobs' executions, one per job (at least one on Express), named by the job id."""

    def __init__(
        self,
        state_machine_arn: str,
        client: Any | None = None,
        express_state_machine_arn: str = "",
    ) -> None:
        self.state_machine_arn = state_machine_arn
        self.express_state_machine_arn = express_state_machine_arn
        self._client = client

    @classmethod
    def for_settings(cls, settings: Settings, client: Any | None = None) -> Workflows:
        r = settings.resources
        return cls(r.state_machine_arn, client, r.express_state_machine_arn)

    @property
    def client(self) -> Any:
        return self._client or aws.stepfunctions()

    def start(self, job_id: str, workflow: Workflow = "standard") -> str:
        """Start the job's execution on `workflow`; returns its ARN. On Standard,
        ExecutionAlreadyExists means a twin request already started it (the name is the job id),
        which is success. On Express every call starts one more execution (at-least-once: the
        steps' effects are idempotent, docs/RELIABILITY.md)."""
        if workflow == "express":
            if not self.express_state_machine_arn:
                raise ValueError("no Express state machine is configured")
            out = self.client.start_execution(
                stateMachineArn=self.express_state_machine_arn,
                name=execution_name(job_id),
                input=json.dumps({"job_id": job_id}),
            )
            return str(out["executionArn"])
        try:
            out = self.client.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=execution_name(job_id),
                input=json.dumps({"job_id": job_id}),
            )
        except Exception as exc:
            if aws.error_code(exc) != "ExecutionAlreadyExists":
                raise
            return execution_arn(self.state_machine_arn, job_id)
        return str(out["executionArn"])

    def status(self, arn: str) -> str | None:
        """A Standard execution's status (RUNNING, SUCCEEDED, ...), or None when it does not
        exist. Express executions have no status to ask for: ValueError."""
        if is_express_execution(arn):
            raise ValueError(f"{arn} is an Express execution: its status is the job record's")
        try:
            return str(self.client.describe_execution(executionArn=arn)["status"])
        except Exception as exc:
            if aws.error_code(exc) == "ExecutionDoesNotExist":
                return None
            raise

    def arn_of(self, job_id: str) -> str:
        """The job's Standard execution ARN (derived from the name)."""
        return execution_arn(self.state_machine_arn, job_id) if self.state_machine_arn else ""


# A task token that is closed (its task succeeded, failed or timed out) or was never issued.
CLOSED_TOKEN_ERRORS = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}


class TaskCallbacks:
    """The callbacks that resume a `.waitForTaskToken` task. Each returns True when Step
    Functions took it, False when the task is closed already (a duplicate, a timed-out try):
    Step Functions closes a token once, so a second callback changes nothing."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.stepfunctions()

    def _call(self, operation: str, **kwargs: Any) -> bool:
        try:
            getattr(self.client, operation)(**kwargs)
        except Exception as exc:
            if aws.error_code(exc) in CLOSED_TOKEN_ERRORS:
                return False
            raise
        return True

    def succeed(self, token: str, output: dict[str, Any]) -> bool:
        return self._call("send_task_success", taskToken=token, output=json.dumps(output))

    def fail(self, token: str, error: str, cause: str) -> bool:
        return self._call(
            "send_task_failure", taskToken=token, error=error[:256], cause=cause[:32768]
        )

    def heartbeat(self, token: str) -> bool:
        return self._call("send_task_heartbeat", taskToken=token)
