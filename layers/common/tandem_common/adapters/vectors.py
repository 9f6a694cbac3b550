"""Amazon S3 Vectors: the vector index (dimension, put, delete, query), writes paced below its
per-index limits.

The limits that shape this module (docs.aws.amazon.com/AmazonS3/latest/userguide/
s3-vectors-limitations.html): 500 vectors and 20 MiB per PutVectors call, 500 keys per
DeleteVectors call, 100 results per QueryVectors, about 1,000 write requests and 2,500 vectors per
second per index (PutVectors and DeleteVectors together), keys of at most 1,024 bytes, 40 KB of
metadata per vector of which at most 2 KB filterable. Writing an existing key overwrites it.

Throttles (429 TooManyRequestsException) are retried by botocore's standard mode (`aws.py`:
8 attempts, exponential backoff with jitter); what still fails is a `VectorIndexBusy`, any other
refusal a `VectorIndexError`, with the service's message.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tandem_common.adapters import aws
from tandem_common.errors import VectorIndexBusy, VectorIndexError

MAX_PUT_VECTORS = 500
MAX_DELETE_KEYS = 500
MAX_REQUEST_BYTES = 20 * 1024 * 1024
REQUEST_BYTES_BUDGET = MAX_REQUEST_BYTES - 64 * 1024  # room for the envelope and the ARN
MAX_WRITE_REQUESTS_PER_S = 1000
MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 40 * 1024
MAX_FILTERABLE_METADATA_BYTES = 2 * 1024
THROTTLED = {"TooManyRequestsException", "ThrottlingException", "ServiceUnavailableException"}

_dimensions: dict[str, int] = {}  # index ARN -> dimension, per container (GetIndex once)


def reset_dimension_cache() -> None:
    _dimensions.clear()


class WritePacer:
    """Spaces one process's index writes so that `writers` processes like it stay below `rate`
    vectors and `requests_per_s` write requests per second together.

    Each write of n vectors reserves max(n / (rate / writers), 1 / (requests_per_s / writers))
    seconds; the next write of this process waits until that has passed. So one process alone
    never bursts above its share, and at most `writers` of them (the Map's MapMaxConcurrency
    children) stay under the index's limits. Thread-safe; `clock` and `sleep` are injectable."""

    def __init__(
        self,
        rate: float,
        writers: int = 1,
        requests_per_s: float = 0.9 * MAX_WRITE_REQUESTS_PER_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.vectors_per_s = rate / max(writers, 1)
        self.requests_per_s = requests_per_s / max(writers, 1)
        self._clock, self._sleep = clock, sleep
        self._next = float("-inf")
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time this pacer made writes wait

    def wait(self, vectors: int) -> float:
        """Block until a write of `vectors` vectors may go; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + max(vectors / self.vectors_per_s, 1 / self.requests_per_s)
            delay = start - now
            self.waited_s += delay
        if delay > 0:
            self._sleep(delay)
        return delay


def _request_bytes(vector: dict[str, Any]) -> int:
    return len(json.dumps(vector, ensure_ascii=False, separators=(",", ":")).encode()) + 1


def put_calls(vectors: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """`vectors` in PutVectors-sized calls: at most 500 vectors and about 20 MiB each."""
    call: list[dict[str, Any]] = []
    size = 0
    for vector in vectors:
        n = _request_bytes(vector)
        if call and (len(call) == MAX_PUT_VECTORS or size + n > REQUEST_BYTES_BUDGET):
            yield call
            call, size = [], 0
        call.append(vector)
        size += n
    if call:
        yield call


class VectorIndex:
    """One S3 Vectors index, addressed by its ARN (client injectable)."""

    def __init__(
        self, index_arn: str, pacer: WritePacer | None = None, client: Any | None = None
    ) -> None:
        self.index_arn = index_arn
        self.pacer = pacer
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.s3vectors()

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(self.client, operation)(indexArn=self.index_arn, **params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
            message = (
                f"S3 Vectors {exc.operation_name} failed: {code}: "
                f"{str(error.get('Message', ''))[:300]} (after {retries} retries)"
            )
            raise (VectorIndexBusy if code in THROTTLED else VectorIndexError)(message) from exc
        except BotoCoreError as exc:  # could not reach the service, after the SDK's retries
            raise VectorIndexBusy(f"S3 Vectors {operation}: {type(exc).__name__}: {exc}") from exc

    def dimension(self) -> int:
        """The index's vector width (GetIndex once per container)."""
        if self.index_arn not in _dimensions:
            _dimensions[self.index_arn] = int(self._call("get_index")["index"]["dimension"])
        return _dimensions[self.index_arn]

    def _paced(self, vectors: int) -> None:
        if self.pacer is not None:
            self.pacer.wait(vectors)

    def put(self, vectors: Sequence[dict[str, Any]]) -> int:
        """PutVectors `{"key", "data": {"float32": [...]}, "metadata"}` (an existing key is
        overwritten); returns the number of calls made."""
        calls = 0
        for call in put_calls(vectors):
            self._paced(len(call))
            self._call("put_vectors", vectors=call)
            calls += 1
        return calls

    def delete(self, keys: Sequence[str]) -> int:
        """DeleteVectors (a key that is not there is no error); returns the number of calls."""
        calls = 0
        for start in range(0, len(keys), MAX_DELETE_KEYS):
            part = list(keys[start : start + MAX_DELETE_KEYS])
            self._paced(len(part))
            self._call("delete_vectors", keys=part)
            calls += 1
        return calls

    def query(
        self, vector: Sequence[float], top_k: int, flt: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """QueryVectors: the `top_k` nearest `{"key", "distance", "metadata"}`, nearest first
        (every page: above its page size S3 Vectors answers with a `nextToken`)."""
        params: dict[str, Any] = {
            "topK": top_k,
            "queryVector": {"float32": [float(x) for x in vector]},
            "returnMetadata": True,
            "returnDistance": True,
        }
        if flt:
            params["filter"] = flt
        hits: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._call("query_vectors", **params, **({"nextToken": token} if token else {}))
            hits.extend(page.get("vectors", []))
            token = page.get("nextToken")
            if not token or len(hits) >= top_k:
                return hits[:top_k]
