"""The real endpoint process (numpy backend, real model) plus a moto S3 server, once per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import httpx
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EndpointProcess:
    url: str
    s3_endpoint: str


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def start_endpoint(s3_server: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """`python -m tandem_endpoint` on a free loopback port, S3 pointed at the moto server."""
    port = free_port()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": os.path.join(REPO, "endpoint"),
    }
    args = [sys.executable, "-m", "tandem_endpoint", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*args, *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert process.poll() is None, "endpoint process exited"
            assert time.monotonic() < deadline, "endpoint never became ready"
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    return process, url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    except BaseException:
        process.terminate()
        process.wait(timeout=10)
        raise


@pytest.fixture(scope="session")
def endpoint(s3_server: str) -> Iterator[EndpointProcess]:
    process, url = start_endpoint(s3_server, "--backend", "numpy", "--enable-fault-injection")
    try:
        yield EndpointProcess(url=url, s3_endpoint=s3_server)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def fake_endpoint(s3_server: str) -> Iterator[EndpointProcess]:
    process, url = start_endpoint(s3_server, "--backend", "fake-fast")
    try:
        yield EndpointProcess(url=url, s3_endpoint=s3_server)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def s3(s3_server: str):
    return boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
