"""SageMaker Asynchronous Inference: `InvokeEndpointAsync` of one batch (the submit function).

The request body never travels in the call: `InputLocation` is the claim-check body in S3, and
SageMaker answers at once with where the result will be. Errors are classed as the real-time
path classes them: throttling and 5xx are retried by the state machine, a 4xx is the batch's
failure (docs/CONTRACTS.md, "Asynchronous inference").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from tandem_common.adapters import aws
from tandem_common.errors import EndpointRejected, EndpointThrottled, EndpointUnavailable

THROTTLING = {"ThrottlingException", "Throttling", "TooManyRequestsException"}
UNAVAILABLE = {"ServiceUnavailable", "ServiceUnavailableException", "InternalFailure"}


@dataclass(frozen=True)
class AsyncInvocation:
    inference_id: str
    output_location: str
    failure_location: str | None


def invoke_async(
    endpoint_name: str,
    input_location: str,
    inference_id: str,
    request_ttl_s: int,
    invocation_timeout_s: int,
    client: Any | None = None,
) -> AsyncInvocation:
    """Queue one inference; EndpointThrottled/EndpointUnavailable (retry) or EndpointRejected."""
    runtime = client or aws.sagemaker_runtime()
    try:
        out = runtime.invoke_endpoint_async(
            EndpointName=endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            InputLocation=input_location,
            InferenceId=inference_id,
            RequestTTLSeconds=request_ttl_s,
            InvocationTimeoutSeconds=invocation_timeout_s,
        )
    except (BotoConnectionError, HTTPClientError) as exc:  # after the SDK's own retries
        raise EndpointUnavailable(f"SageMaker could not be reached: {exc}") from exc
    except Exception as exc:
        raise classify(exc) from exc
    return AsyncInvocation(
        inference_id=str(out.get("InferenceId") or inference_id),
        output_location=str(out["OutputLocation"]),
        failure_location=out.get("FailureLocation"),
    )


def classify(exc: Exception) -> Exception:
    """The domain error of a failed InvokeEndpointAsync (the exception itself if not AWS's)."""
    code = aws.error_code(exc)
    if not code:
        return exc
    response = getattr(exc, "response", {}) or {}
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    message = str(response.get("Error", {}).get("Message") or "")[:300]
    detail = f"{code}: {message}" if message else code
    if code in THROTTLING or status == 429:
        return EndpointThrottled(f"the endpoint is throttling: {detail}")
    if code in UNAVAILABLE or status >= 500:
        return EndpointUnavailable(f"the endpoint is unavailable: {detail}")
    return EndpointRejected(f"the endpoint refused the request: {detail}")
