"""`tandem local up` says where the metrics go: the EMF lines in the function logs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tandem.local.cloud import serve_until_stopped


class Ready(Exception):
    """Raised by the echo at "ready": the banner is complete, the serving loop never starts."""


def test_local_up_prints_where_the_metrics_are_written(tmp_path: object) -> None:
    cloud = SimpleNamespace(
        api_url="http://127.0.0.1:3000",
        lambda_url="http://127.0.0.1:3001",
        moto_url="http://127.0.0.1:5000",
        endpoint_mode="realtime",
        endpoint_url="http://127.0.0.1:8080",
        host="127.0.0.1",
        bucket="tandem-data",
        queue_url="http://127.0.0.1:5000/q",
        vector_index_arn="",
        seed_path=None,
        log_dir=tmp_path,
    )
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        if line.startswith("ready"):
            raise Ready

    with pytest.raises(Ready):
        serve_until_stopped(cloud, echo)  # type: ignore[arg-type]
    metrics = [line for line in lines if line.startswith("metrics:")]
    assert metrics == [
        f"metrics: CloudWatch EMF lines in the function logs ({tmp_path}/<function>.log); "
        "`tandem local metrics` sums them up"
    ]
