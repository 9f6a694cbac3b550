"""A failed SQS record's reason is logged at WARNING (not only at Powertools' DEBUG), with its
message id and without the message body: poison messages can carry document text."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from tandem_common.observability import logger

POISON = {
    "0f6d1c9e-0002-4000-8000-000000000002": "message body is not JSON",
    "0f6d1c9e-0004-4000-8000-000000000004": "message is not a job request: documents.0.id",
}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    handler = _Records()
    underlying = logging.getLogger(logger.name)
    level = underlying.level
    underlying.addHandler(handler)
    underlying.setLevel(logging.INFO)  # what the template sets: LOG_LEVEL INFO
    yield handler.records
    underlying.removeHandler(handler)
    underlying.setLevel(level)


def test_each_poison_record_is_logged_with_its_reason_and_no_text(
    cloud: None, load_handler: Any, lambda_context: Any, event: Any, records: Any
) -> None:
    ingest = load_handler("ingest")
    batch = event("ingest", "sqs_batch_with_poison")
    out = ingest.lambda_handler(batch, lambda_context)
    assert {f["itemIdentifier"] for f in out["batchItemFailures"]} == set(POISON)

    failed = [r for r in records if r.getMessage() == "sqs record failed"]
    assert {r.levelno for r in failed} == {logging.WARNING}
    reasons = {r.message_id: r.reason for r in failed}
    assert set(reasons) == set(POISON)
    for message_id, start in POISON.items():
        assert reasons[message_id].startswith(start), reasons[message_id]
    # the text of the wrong-typed document (["wrong"]) and the bodies never reach a log line
    bodies = [r["body"] for r in batch["Records"]]
    for r in records:
        line = r.getMessage() + json.dumps(r.__dict__, default=str)
        assert "wrong" not in line and not any(b in line for b in bodies)


def test_a_failure_after_parsing_is_logged_with_type_and_aws_code(
    cloud: None,
    load_handler: Any,
    lambda_context: Any,
    event: Any,
    records: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.exceptions import ClientError
    from tandem_common.usecases import ingest as usecase

    ingest = load_handler("ingest")
    real_submit = ingest.submit
    throttled_id = usecase.sqs_job_id("0f6d1c9e-0001-4000-8000-000000000001")

    def submit(submission: Any) -> Any:
        if submission.job_id == throttled_id:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "PutItem"
            )
        return real_submit(submission=submission)

    monkeypatch.setattr(ingest, "submit", submit)
    out = ingest.lambda_handler(event("ingest", "sqs_batch_with_poison"), lambda_context)
    assert len(out["batchItemFailures"]) == 3
    reasons = {r.message_id: r.reason for r in records if r.getMessage() == "sqs record failed"}
    assert reasons["0f6d1c9e-0001-4000-8000-000000000001"] == "ClientError: ThrottlingException"
    assert usecase.failure_reason(ValueError("doc text here")) == "ValueError"
