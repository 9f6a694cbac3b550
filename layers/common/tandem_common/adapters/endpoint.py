"""The SageMaker endpoint's synchronous inline path (the api's `POST /v1/embeddings`)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from tandem_common.adapters import aws
from tandem_common.errors import EndpointError, EndpointUnavailable

F32 = 4  # bytes per float32


@dataclass(frozen=True)
class InlineVectors:
    """The endpoint's answer: one row per input, each the little-endian float32 bytes of its
    vector (the endpoint's `base64-f32` encoding, decoded: exact, and a quarter of JSON's size)."""

    model: str
    dims: int
    rows: list[bytes]


def invoke_inline(endpoint_name: str, inputs: list[str]) -> InlineVectors:
    """Synchronous inline call of the SageMaker endpoint; a malformed answer is an EndpointError."""
    if not endpoint_name:  # EndpointMode=async without QueryEndpointName (template.yaml)
        raise EndpointUnavailable(
            "no real-time endpoint serves /v1/embeddings: this stack's endpoint is asynchronous "
            "(EndpointMode=async) and answers only InvokeEndpointAsync; deploy with "
            "QueryEndpointName set to a real-time endpoint"
        )
    try:
        out = aws.sagemaker_runtime().invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps({"inputs": inputs, "encoding": "base64-f32"}),
        )
    except Exception as exc:
        code = aws.error_code(exc)
        if code in {"ThrottlingException", "ServiceUnavailable", "ServiceUnavailableException"}:
            raise EndpointUnavailable("the model endpoint is busy; retry later") from exc
        if code:
            raise EndpointError(f"the model endpoint failed: {code}") from exc
        raise
    return _parse(json.loads(out["Body"].read()), len(inputs))


def _parse(result: Any, count: int) -> InlineVectors:
    malformed = EndpointError("the model endpoint returned a malformed response")
    if not isinstance(result, dict):
        raise malformed
    outputs, dims = result.get("outputs"), result.get("dims")
    if not isinstance(outputs, list) or len(outputs) != count or not isinstance(dims, int):
        raise malformed
    try:
        rows = [base64.b64decode(row, validate=True) for row in outputs]
    except (TypeError, ValueError):  # not a string, not ASCII, not base64
        raise malformed from None
    if dims < 1 or any(len(row) != dims * F32 for row in rows):
        raise malformed
    return InlineVectors(model=str(result.get("model") or ""), dims=dims, rows=rows)
