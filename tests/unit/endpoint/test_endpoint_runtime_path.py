"""/endpoints/{name}/invocations speaks the SageMaker runtime's error shapes: a real boto3
sagemaker-runtime client (endpoint_url = our loopback server) raises the expected ClientErrors."""

from __future__ import annotations

import json
import threading

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from endpoint_fakes import FakeBackend, live_server


@pytest.fixture(scope="module")
def url():
    with live_server(FakeBackend, enable_fault_injection=True, max_wait_ms=1) as base:
        yield base


def runtime_client(url: str):
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def invoke(url: str, body: object) -> dict:
    data = body if isinstance(body, str) else json.dumps(body)
    return runtime_client(url).invoke_endpoint(
        EndpointName="tandem-embedder", Body=data, ContentType="application/json"
    )


def error_of(url: str, body: object) -> ClientError:
    with pytest.raises(ClientError) as caught:
        invoke(url, body)
    return caught.value


def test_success_returns_the_container_body(url: str) -> None:
    response = invoke(url, {"inputs": ["hello"]})
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert json.loads(response["Body"].read())["dims"] == 4


def test_container_429_is_throttling_exception(url: str) -> None:
    httpx.post(f"{url}/faults", json={"throttle": 1})
    err = error_of(url, {"inputs": ["a"]})
    assert err.response["Error"]["Code"] == "ThrottlingException"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert "injected fault" in err.response["Error"]["Message"]


def test_container_5xx_is_model_error_424(url: str) -> None:
    httpx.post(f"{url}/faults", json={"error_5xx": 1})
    err = error_of(url, {"inputs": ["a"]})
    assert err.response["Error"]["Code"] == "ModelError"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err.response["Error"]["Message"].startswith(
        'Received server error (500) from primary with message "'
    )
    assert err.response["OriginalStatusCode"] == 500  # type: ignore[typeddict-item]


def test_container_4xx_is_model_error_424(url: str) -> None:
    err = error_of(url, "{broken json")
    assert err.response["Error"]["Code"] == "ModelError"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err.response["Error"]["Message"].startswith(
        'Received client error (400) from primary with message "'
    )
    assert "invalid_json" in err.response["Error"]["Message"]
    assert err.response["OriginalStatusCode"] == 400  # type: ignore[typeddict-item]


def test_every_runtime_reply_names_its_request(url: str) -> None:
    # Step Functions reads the request id into the error's Cause; the runtime always sends one.
    ok = invoke(url, {"inputs": ["a"]})
    assert ok["ResponseMetadata"]["RequestId"]
    err = error_of(url, "{broken json")
    assert err.response["ResponseMetadata"]["RequestId"]


def test_runtime_error_messages_are_capped_for_step_functions_state() -> None:
    # A huge container message must not blow the Map's results past the 256 KiB state limit.
    from starlette.responses import JSONResponse
    from tandem_endpoint.server import _as_runtime_error

    huge = JSONResponse({"error": {"code": "boom", "message": "x" * 100_000}}, status_code=500)
    body = json.loads(bytes(_as_runtime_error(huge).body))
    assert len(body["message"]) < 1024
    assert body["OriginalStatusCode"] == 500


def test_container_503_is_service_unavailable() -> None:
    never = threading.Event()

    def never_loads() -> FakeBackend:
        never.wait(timeout=10)
        return FakeBackend()

    with live_server(never_loads, wait_ready=False) as base:
        err = error_of(base, {"inputs": ["a"]})
        never.set()
    assert err.response["Error"]["Code"] == "ServiceUnavailable"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert "loading" in err.response["Error"]["Message"]
