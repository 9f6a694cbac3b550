"""Helpers for the endpoint unit tests (a plain module, not conftest.py, so it cannot clash): a fake backend and a live uvicorn server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import uvicorn
from tandem_endpoint.backends import Backend, DirectBackend
from tandem_endpoint.backends.tokens import Tokens
from tandem_endpoint.batcher import BatchingSettings
from tandem_endpoint.server import ServerSettings, create_app


class FakeBackend:
    """Stands in for a model: tokens = words + 2; vector = [len(text), 1, 0, 0] normalised.

    Its "tokenizer" gives each distinct text an id (the sequence's first token), so a forward
    pass can tell which texts it got. Records each forward pass (texts, and the batch's padded
    width); `gate` (if set) blocks forward passes until released.
    """

    name = "fake-model"
    dims = 4

    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.delay_s = delay_s
        self.gate = gate
        self.batches: list[list[str]] = []
        self.widths: list[int] = []
        self.forward_started = threading.Event()
        self._ids: dict[str, int] = {}
        self._texts: dict[int, str] = {}
        self._lock = threading.Lock()

    def tokenize(self, texts: Sequence[str]) -> Tokens:
        sequences = []
        with self._lock:
            for text in texts:
                if text not in self._ids:
                    self._ids[text] = len(self._ids) + 1
                    self._texts[self._ids[text]] = text
                sequences.append([self._ids[text]] + [7] * (len(text.split()) + 1))
        return Tokens.from_sequences(sequences)

    def forward(self, tokens: Tokens) -> np.ndarray:
        texts = [self._texts[int(i)] for i in tokens.ids[:, 0]]
        self.batches.append(texts)
        self.widths.append(tokens.width)
        assert tokens.width == int(tokens.lengths.max()), "a batch is padded to its longest row"
        self.forward_started.set()
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.array([fake_vector(t) for t in texts], dtype=np.float32).reshape(-1, self.dims)


def fake_vector(text: str) -> list[float]:
    v = np.array([len(text), 1.0, 0.0, 0.0])
    return list(v / np.linalg.norm(v))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(
    backend_factory: Callable[[], Backend | DirectBackend],
    wait_ready: bool = True,
    **overrides: object,
) -> Iterator[str]:
    """Run the real app under uvicorn in a thread; yield its base URL."""
    batching = BatchingSettings(
        **{k: v for k, v in overrides.items() if k in BatchingSettings.__dataclass_fields__}
    )
    server_kwargs = {k: v for k, v in overrides.items() if k in ServerSettings.__dataclass_fields__}
    settings = ServerSettings(batching=batching, **server_kwargs)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, backend_factory), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    if wait_ready:
        import httpx

        while time.monotonic() < deadline:
            if httpx.get(f"{url}/ping").status_code == 200:
                break
            time.sleep(0.01)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
