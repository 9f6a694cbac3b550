"""The SageMaker endpoint's synchronous inline path (the api's `POST /v1/embeddings`)."""

from __future__ import annotations

import json
from typing import Any

from tandem_common.adapters import aws
from tandem_common.errors import EndpointError, EndpointUnavailable


def invoke_inline(endpoint_name: str, inputs: list[str]) -> dict[str, Any]:
    """Synchronous inline call of the SageMaker endpoint."""
    try:
        out = aws.sagemaker_runtime().invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps({"inputs": inputs, "encoding": "float"}),
        )
    except Exception as exc:
        code = aws.error_code(exc)
        if code in {"ThrottlingException", "ServiceUnavailable", "ServiceUnavailableException"}:
            raise EndpointUnavailable("the model endpoint is busy; retry later") from exc
        if code:
            raise EndpointError(f"the model endpoint failed: {code}") from exc
        raise
    result: dict[str, Any] = json.loads(out["Body"].read())
    return result
