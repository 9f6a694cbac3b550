"""The models' validation on msgspec: what is refused, and how each problem is located and worded
(`validation_errors`, which the api's 422s, the OpenAI routes' 400s and ingest's poison-message
reasons are made from)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tandem_common.models import (
    CollectResult,
    EmbeddingsRequest,
    JobCreate,
    JobOptions,
    QueueMessage,
    ValidationError,
    WebhookOutcome,
    validation_errors,
)


def errors(model: Any, data: object) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return validation_errors(info.value)


def test_a_constraint_is_located_by_its_field_path() -> None:
    got = errors(JobCreate, {"documents": [{"id": "a", "text": "t"}], "options": {"batch_size": 0}})
    assert got == [
        {"type": "invalid", "loc": ("options", "batch_size"), "msg": "Expected `int` >= 1"}
    ]
    got = errors(JobCreate, {"documents": [{"id": "", "text": "t"}]})
    assert got[0]["loc"] == ("documents", 0, "id")


def test_missing_and_unknown_fields_are_named() -> None:
    assert errors(JobCreate, {"source": {}}) == [
        {"type": "missing", "loc": ("source", "s3_uri"), "msg": "Field required"}
    ]
    assert errors(JobCreate, {"source": {"s3_uri": "s3://bucket/key"}, "extra": 1}) == [
        {"type": "extra_forbidden", "loc": ("extra",), "msg": "Extra inputs are not permitted"}
    ]


def test_cross_field_rules_run_on_validation() -> None:
    assert errors(JobCreate, {}) == [
        {"type": "invalid", "loc": (), "msg": "give exactly one of documents or source"}
    ]
    got = errors(
        QueueMessage, {"s3_uri": "s3://bucket/key", "options": {"webhook_url": "https://x"}}
    )
    assert got == [
        {
            "type": "invalid",
            "loc": ("options",),
            "msg": "webhook_secret is required with webhook_url",
        }
    ]
    assert (
        "whsec_"
        in errors(JobOptions, {"webhook_url": "https://x", "webhook_secret": "s"})[0]["msg"]
    )


def test_numbers_in_strings_are_read_as_numbers_but_a_bool_is_not_a_number() -> None:
    assert JobOptions.model_validate({"batch_size": "8"}).batch_size == 8
    assert errors(JobOptions, {"batch_size": True})[0]["loc"] == ("batch_size",)


def test_every_lone_surrogate_is_reported_where_it_is() -> None:
    body = '{"documents": [{"id": "s", "text": "half \\ud800"}, {"id": "\\udfff", "text": "t"}]}'
    got = errors(JobCreate, json.loads(body))
    assert [e["loc"] for e in got] == [("documents", 0, "text"), ("documents", 1, "id")]
    assert {e["type"] for e in got} == {"string_unicode"}
    # a proper pair is text
    ok = JobCreate.model_validate(
        json.loads('{"documents": [{"id": "a", "text": "\\ud83d\\ude00"}]}')
    )
    assert ok.documents is not None and ok.documents[0].text == "\N{GRINNING FACE}"


def test_the_embeddings_input_has_its_own_messages() -> None:
    got = errors(EmbeddingsRequest, {"input": [1, 2, 3]})
    assert got[0]["type"] == "invalid_input" and "Token arrays are not supported" in got[0]["msg"]
    assert errors(EmbeddingsRequest, {"input": ["a", " "]})[0]["msg"] == (
        "input[1] must not be empty or only whitespace"
    )
    assert errors(EmbeddingsRequest, {"input": "a", "dimensions": "384"})[0]["loc"] == (
        "dimensions",
    )


def test_text_that_is_not_json_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        WebhookOutcome.model_validate_json(b'{"id": ')


def test_dump_leaves_out_internal_fields_and_optionally_nones() -> None:
    assert "written" not in CollectResult(index=0, ok=True, written=True).model_dump()
    outcome = WebhookOutcome(id="w", created_at="2026-12-01T00:00:00.000Z")
    assert "last_status" in outcome.model_dump()
    assert "last_status" not in outcome.model_dump(exclude_none=True)
    assert outcome.model_copy(update={"attempts": 2}).attempts == 2 and outcome.attempts == 0
