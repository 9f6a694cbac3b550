"""Reading jobs, executions and the vector index straight from the local cloud's moto (the demo,
tests, load, benchmarks).

A job's status is its record's. Whether anything of it still runs is asked of Step Functions
for a Standard job (DescribeExecution), and of the local cloud's own bookkeeping for an Express
job (`moto_compat.express_executions`): AWS answers no API call about Express executions, and
the local cloud refuses them too, so nothing here can lean on them (`history` is Standard's).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from tandem_common.adapters.jobs import to_plain
from tandem_common.contracts import TERMINAL_STATUSES, JobPaths, execution_arn
from tandem_common.text.npy import decode_f32

from tandem.local import moto_compat


class JobInspector:
    """Jobs-table items and execution statuses, and waiting on them. A job is *done* when its
    record is terminal and its execution has ended (nothing of it still runs)."""

    def __init__(
        self,
        dynamodb: Any,
        stepfunctions: Any,
        s3: Any,
        bucket: str,
        jobs_table: str,
        state_machine_arn: str,
        endpoint_metrics: Callable[[], dict[str, Any]],
        express_state_machine_arn: str = "",
    ) -> None:
        self.dynamodb = dynamodb
        self.sfn = stepfunctions
        self.s3 = s3
        self.bucket = bucket
        self.jobs_table = jobs_table
        self.state_machine_arn = state_machine_arn
        self.express_state_machine_arn = express_state_machine_arn
        self.endpoint_metrics = endpoint_metrics

    def _jsonl(self, key: str) -> list[dict[str, Any]]:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return []
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def result_file(self, job_id: str, rel: str) -> list[dict[str, Any]]:
        """A JSONL result file of the job (`result/documents.jsonl`, ...): [] when absent."""
        return self._jsonl(JobPaths(self.bucket, job_id).key(rel))

    def shards(self, job_id: str) -> list[dict[str, Any]]:
        return self.result_file(job_id, JobPaths.result_shards)

    def result_rows(self, job_id: str) -> list[dict[str, Any]]:
        """Every result vector row of the job, shard by shard (small jobs: tests, the demo)."""
        paths = JobPaths(self.bucket, job_id)
        rows: list[dict[str, Any]] = []
        for shard in self.shards(job_id):
            rows += self._jsonl(paths.key(paths.shard_jsonl(int(shard["index"]))))
        return rows

    def chunk_rows(self, job_id: str) -> list[dict[str, Any]]:
        """Every chunk preprocess placed, batch by batch (`batches/rows-NNNNN.jsonl`)."""
        paths = JobPaths(self.bucket, job_id)
        rows: list[dict[str, Any]] = []
        for batch in self._jsonl(paths.key(paths.batch_list)):
            rows += self._jsonl(paths.key(paths.batch_rows(int(batch["index"]))))
        return rows

    def result_matrix(self, job_id: str) -> tuple[int, int, list[float]]:
        """(rows, dims, values) of the job's shards' .npy files, concatenated in order."""
        paths = JobPaths(self.bucket, job_id)
        total, dims, values = 0, 0, []
        for shard in self.shards(job_id):
            key = paths.key(paths.shard_npy(int(shard["index"])))
            rows, dims, part = decode_f32(
                self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            )
            total += rows
            values.extend(part)
        return total, dims, values

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's item, as plain JSON types (no Decimals), or None."""
        item = self.dynamodb.get_item(
            TableName=self.jobs_table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        d = TypeDeserializer()
        return dict(to_plain({k: d.deserialize(v) for k, v in item.items()}))

    def express_executions(self, job_id: str | None = None) -> list[dict[str, str]]:
        """Express executions (of one job, by name), from the local cloud's bookkeeping."""
        if not self.express_state_machine_arn:
            return []
        runs = moto_compat.express_executions(self.express_state_machine_arn)
        return [r for r in runs if job_id is None or r["name"] == job_id]

    def execution_status(self, job_id: str) -> str | None:
        """RUNNING while any execution of the job runs, else the last one's status (None: no
        execution). Standard: DescribeExecution; Express: the local bookkeeping."""
        statuses = [r["status"] for r in self.express_executions(job_id)]
        arn = execution_arn(self.state_machine_arn, job_id)
        with contextlib.suppress(Exception):  # no Standard execution of this job
            statuses.append(str(self.sfn.describe_execution(executionArn=arn)["status"]))
        if "RUNNING" in statuses:
            return "RUNNING"
        return statuses[-1] if statuses else None

    def history(self, job_id: str) -> list[dict[str, Any]]:
        """Every event of the job's Standard execution, page by page (an Express execution has
        no history to read: AWS and the local cloud refuse GetExecutionHistory for it)."""
        kwargs: dict[str, Any] = {
            "executionArn": execution_arn(self.state_machine_arn, job_id),
            "maxResults": 1000,
        }
        events: list[dict[str, Any]] = []
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events += page["events"]
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def done(self, job_id: str) -> dict[str, Any] | None:
        """The job's item if it is done (terminal record, executions ended), else None."""
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
        standard = self.sfn.list_executions(
            stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
        )["executions"]
        express = [r for r in self.express_executions() if r["status"] == "RUNNING"]
        return len(standard) + len(express)

    def drain(self, timeout: float = 120.0) -> None:
        """Wait until no execution runs and the endpoint has nothing in flight."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running_executions() == 0 and self.endpoint_metrics().get("in_flight", 0) == 0:
                return
            time.sleep(0.5)
        raise TimeoutError("local cloud did not drain")


def stored_vectors(s3vectors: Any, index_arn: str) -> dict[str, dict[str, Any]]:
    """Every vector of an S3 Vectors index: key -> {"key", "data", "metadata"} (ListVectors)."""
    pages = s3vectors.get_paginator("list_vectors").paginate(
        indexArn=index_arn, returnData=True, returnMetadata=True
    )
    return {v["key"]: v for page in pages for v in page["vectors"]}
