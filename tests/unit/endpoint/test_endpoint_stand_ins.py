"""The stand-ins: fake-fast (issue 12) and probe-zeros (the feed-rate probe), and the tokenizer's
ASCII fast path, which must give the full tokenizer's ids."""

from __future__ import annotations

import io
import json
import os

import httpx
import numpy as np
import pytest
from endpoint_fakes import live_server
from hypothesis import given, settings
from hypothesis import strategies as st
from tandem_endpoint.__main__ import default_model_dir
from tandem_endpoint.backends import DirectBackend, load_backend
from tandem_endpoint.backends.stand_ins import FakeFastBackend, ProbeZerosBackend
from tandem_endpoint.backends.tokens import WordPieceTokenizer

REFERENCE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "reference")
MODEL_DIR = default_model_dir()


def test_fake_fast_is_deterministic_unit_norm_and_tells_texts_apart() -> None:
    texts = [f"chunk {i}" for i in range(5000)] + ["", "é中文", "chunk 1"]
    a = FakeFastBackend(dims=384).embed_texts(texts)
    b = FakeFastBackend(dims=384).embed_texts(list(reversed(texts)))[::-1]
    assert a.dtype == np.float32 and a.shape == (len(texts), 384)
    np.testing.assert_array_equal(a, b)  # same text, same vector, whatever the batch
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a[1], a[-1])
    distinct = np.unique(a[:-1], axis=0)
    assert len(distinct) == len(texts) - 1
    cosines = a[:2000] @ a[:2000].T - np.eye(2000)
    assert cosines.max() < 0.9  # pseudo-random directions, not near-duplicates


def test_fake_fast_is_a_direct_backend_named_as_a_fake() -> None:
    backend = load_backend("fake-fast", MODEL_DIR)
    assert isinstance(backend, DirectBackend) and "fake" in backend.name
    assert backend.dims == 384
    assert not hasattr(backend, "tokenize")  # it skips the tokenizer and the batcher


def test_fake_fast_serves_inline_without_a_batcher() -> None:
    with live_server(lambda: FakeFastBackend(dims=8)) as url:
        r = httpx.post(f"{url}/invocations", json={"inputs": ["a", "b", "a"]})
        assert r.status_code == 200 and "fake" in r.json()["model"]
        rows = np.array(r.json()["outputs"])
        np.testing.assert_allclose(rows[0], rows[2])
        assert not np.allclose(rows[0], rows[1])
        m = httpx.get(f"{url}/metrics").json()
        assert m.get("batches", 0) == 0
        assert m["stages"]["forward"]["sentences"] == 3 and "tokenize" not in m["stages"]


def test_probe_zeros_tokenizes_like_the_model_and_returns_zeros() -> None:
    probe = ProbeZerosBackend(MODEL_DIR)
    assert "probe" in probe.name and "not a model" in probe.name
    tokens = probe.tokenize(["hello world", "a"])
    assert tokens.lengths.tolist() == [4, 3]  # [CLS] hello world [SEP]
    out = probe.forward(tokens)
    assert out.shape == (2, 384) and not out.any()


def test_npy_encoding_returns_a_binary_body() -> None:
    with live_server(lambda: FakeFastBackend(dims=8)) as url:
        r = httpx.post(f"{url}/invocations", json={"inputs": ["a", "b"], "encoding": "npy"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-npy"
        assert r.headers["x-tandem-dims"] == "8"
        vectors = np.load(io.BytesIO(r.content))
        expected = FakeFastBackend(dims=8).embed_texts(["a", "b"])
        assert vectors.dtype == np.float32
        np.testing.assert_array_equal(vectors, expected)


@pytest.fixture(scope="module")
def tokenizers() -> tuple[WordPieceTokenizer, WordPieceTokenizer]:
    return WordPieceTokenizer(MODEL_DIR, 256), WordPieceTokenizer(MODEL_DIR, 256, False)


def test_ascii_fast_path_gives_the_full_tokenizers_ids_on_the_reference_texts(
    tokenizers,
) -> None:
    fast, full = tokenizers
    with open(os.path.join(REFERENCE, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)
    texts += ["Hello, World!", "MIXED case\tTabs\r\nand newlines", "a\x01b", "a\x0bb", "x" * 500]
    # the model's special tokens written in a text (hypothesis found "[UNK]")
    texts += ["[UNK]", "a [CLS] b [SEP]", "[MASK]", "[PAD]", "[unk]"]
    a, b = fast.tokenize(texts), full.tokenize(texts)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    np.testing.assert_array_equal(a.ids, b.ids)


@settings(deadline=None, max_examples=300)
@given(
    st.lists(
        st.text(alphabet=st.characters(max_codepoint=0x7F) | st.sampled_from("éÀß中")),
        min_size=1,
        max_size=8,
    )
)
def test_ascii_fast_path_gives_the_full_tokenizers_ids(tokenizers, texts: list[str]) -> None:
    fast, full = tokenizers
    a, b = fast.tokenize(texts), full.tokenize(texts)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    np.testing.assert_array_equal(a.ids, b.ids)


def test_tokens_are_truncated_at_the_models_length(tokenizers) -> None:
    fast, _ = tokenizers
    tokens = fast.tokenize(["word " * 1000, "short"])
    assert tokens.lengths.tolist() == [256, 3] and tokens.width == 256
    assert (tokens.ids[1, 3:] == 0).all() and tokens.attention_mask.sum() == 259
