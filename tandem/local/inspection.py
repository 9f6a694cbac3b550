"""Reading jobs and executions straight from the local cloud's moto (the demo, tests, load)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from tandem_common.adapters.jobs import to_plain
from tandem_common.contracts import TERMINAL_STATUSES, execution_arn


class JobInspector:
    """Jobs-table items and execution statuses, and waiting on them. A job is *done* when its
    record is terminal and its execution has ended (nothing of it still runs)."""

    def __init__(
        self,
        dynamodb: Any,
        stepfunctions: Any,
        jobs_table: str,
        state_machine_arn: str,
        endpoint_metrics: Callable[[], dict[str, Any]],
    ) -> None:
        self.dynamodb = dynamodb
        self.sfn = stepfunctions
        self.jobs_table = jobs_table
        self.state_machine_arn = state_machine_arn
        self.endpoint_metrics = endpoint_metrics

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's item, as plain JSON types (no Decimals), or None."""
        item = self.dynamodb.get_item(
            TableName=self.jobs_table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        d = TypeDeserializer()
        return dict(to_plain({k: d.deserialize(v) for k, v in item.items()}))

    def execution_status(self, job_id: str) -> str | None:
        arn = execution_arn(self.state_machine_arn, job_id)
        try:
            return str(self.sfn.describe_execution(executionArn=arn)["status"])
        except Exception:
            return None

    def done(self, job_id: str) -> dict[str, Any] | None:
        """The job's item if it is done (terminal record, execution ended), else None."""
        job = self.get(job_id)
        ended = job is not None and job.get("status") in TERMINAL_STATUSES
        return job if ended and self.execution_status(job_id) != "RUNNING" else None

    def wait_all(
        self,
        job_ids: Iterable[str],
        timeout: float = 180.0,
        interval: float = 0.5,
        on_done: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Wait until every job is done or `timeout` passes; returns the done ones' items."""
        pending = list(dict.fromkeys(job_ids))
        finished: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                job = self.done(job_id)
                if job is not None:
                    finished[job_id] = job
                    pending.remove(job_id)
                    if on_done is not None:
                        on_done(job_id, job)
            if pending:
                time.sleep(interval)
        return finished

    def wait(self, job_id: str, timeout: float = 180.0, interval: float = 0.5) -> dict[str, Any]:
        """Wait until the job is done; return its item (TimeoutError when it is not)."""
        found = self.wait_all([job_id], timeout, interval).get(job_id)
        if found is None:
            job = self.get(job_id)
            raise TimeoutError(
                f"job {job_id} not terminal after {timeout}s: {job and job.get('status')}"
            )
        return found

    def running_executions(self) -> int:
        return len(
            self.sfn.list_executions(
                stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
            )["executions"]
        )

    def drain(self, timeout: float = 120.0) -> None:
        """Wait until no execution runs and the endpoint has nothing in flight."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running_executions() == 0 and self.endpoint_metrics().get("in_flight", 0) == 0:
                return
            time.sleep(0.5)
        raise TimeoutError("local cloud did not drain")
