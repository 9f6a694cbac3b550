"""The local cloud: moto + a local Lambda service + the real endpoint, built from template.yaml.

Parts (`LocalCloud` in cloud.py wires them together): template.py (resources from the
template), moto_compat.py (the only moto patches), lambda_service.py + lambda_worker.py (the
Lambda Invoke API and its worker processes), http_api.py (payload-v2 HTTP API),
event_sources.py (S3 → EventBridge and SQS pollers, SNS → Lambda), schedules.py,
endpoint_process.py (the real model server), async_front.py (EndpointMode=async: SageMaker's
async platform before it), faults.py (what the tests break), inspection.py (jobs and executions, read
directly), http_server.py (the background HTTP server both services use), state.py (what a
running `tandem local up` tells other commands), seed.py (`--seed`: the state events/ needs),
artefact.py + invoke.py (`tandem local invoke`: the built functions without Docker),
outcomes.py (each event file's stated outcome).
"""

from __future__ import annotations

from typing import Any

# moto accepts any credentials; these fixed fake ones keep a local client from ever finding
# (and signing with) real ones.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def local_client(service: str, endpoint_url: str, region: str, config: Any = None) -> Any:
    """A boto3 client for a local service (moto, the Lambda service, the endpoint)."""
    import boto3

    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        config=config,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
