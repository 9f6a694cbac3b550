"""Stand-ins that are not models, each named as such in its `name` and `/ping` answer.

- `probe-zeros` (`--backend probe-zeros`): the real tokenizer, the real batcher and forward
  thread, and a forward pass that returns zeros of the right shape. It measures the feed rate:
  what the server's CPU side can push to a model that costs nothing (`bench/feed_bench.py`).
- `fake-fast` (`--backend fake-fast`): deterministic pseudo-vectors at memory speed, for
  orchestration-scale tests and benchmarks (issue 12). Unit-norm float32; the same text gives
  the same vector in every process, different texts give different vectors. It skips what only a
  model needs: no tokenizer, no batcher queue or `max_wait_ms`, no forward thread; each request's
  vectors are computed in its own worker thread from a hash of each text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from tandem_endpoint.backends.model_files import max_seq_length, read_config
from tandem_endpoint.backends.tokens import Tokens, WordPieceTokenizer


class ProbeZerosBackend:
    """Feed-rate probe: tokenizes like the model, 'embeds' as zeros. Never serve it."""

    def __init__(self, model_dir: str, ascii_fast_path: bool = True) -> None:
        config = read_config(model_dir)
        self.dims = int(config["hidden_size"])
        self.name = "probe-zeros (not a model)"
        self.max_seq_length = max_seq_length(model_dir, config)
        self.tokenizer = WordPieceTokenizer(model_dir, self.max_seq_length, ascii_fast_path)

    def tokenize(self, texts: Sequence[str]) -> Tokens:
        return self.tokenizer.tokenize(texts)

    def forward(self, tokens: Tokens) -> np.ndarray:
        return np.zeros((len(tokens), self.dims), dtype=np.float32)


class FakeFastBackend:
    """Pseudo-vectors from a 64-bit BLAKE2b hash of each text's UTF-8 bytes.

    The hash's 64 bits become a +-1 vector `s`, and the vector is `s @ basis`, normalised, with a
    fixed Gaussian `basis` [64, dims] of full row rank: distinct hashes give distinct unit
    vectors (s1 @ basis = c * s2 @ basis with c > 0 forces s1 = s2). One BLAS call per request.
    """

    bits = 64

    def __init__(self, model_dir: str | None = None, dims: int | None = None) -> None:
        if dims is None:
            dims = int(read_config(model_dir)["hidden_size"]) if model_dir else 384
        self.dims = dims
        self.name = "fake-fast (pseudo-vectors, not a model)"
        basis = np.random.default_rng(20261127).standard_normal((self.bits, dims))
        self._basis = basis.astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        digests = b"".join(
            hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            for t in texts
        )
        bits = np.unpackbits(np.frombuffer(digests, dtype=np.uint8).reshape(len(texts), 8), axis=1)
        signs = bits.astype(np.float32)
        signs *= 2.0
        signs -= 1.0
        vectors = signs @ self._basis
        vectors *= (1.0 / np.sqrt(np.einsum("ij,ij->i", vectors, vectors)))[:, None]
        return vectors
