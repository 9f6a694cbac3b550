"""SQS queues: sending a JSON message now or after a delay (the webhook queue's attempts)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from tandem_common.adapters import aws

MAX_DELAY_S = 900  # SQS DelaySeconds: a longer wait is re-queued in hops of at most this


class Queue:
    """One queue by URL (client injectable; defaults to the cached client)."""

    def __init__(self, url: str, client: Any | None = None) -> None:
        self.url = url
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("sqs")

    def send(self, body: Mapping[str, Any], delay_s: float = 0) -> int:
        """Send `body` as JSON, invisible for `delay_s` seconds (rounded up, at most 900).
        Returns the DelaySeconds used."""
        if not self.url:
            raise RuntimeError("no queue URL configured (WEBHOOK_QUEUE_URL)")
        delay = min(MAX_DELAY_S, max(0, math.ceil(delay_s)))
        self.client.send_message(
            QueueUrl=self.url,
            MessageBody=json.dumps(body, separators=(",", ":")),
            DelaySeconds=delay,
        )
        return delay
