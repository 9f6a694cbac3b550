"""Hostile input at the unit level: decoders, JSONL writer, S3 URIs, chunker on nasty text.

Adds to tests/unit/test_text_processing.py (which has the UTF-8/UTF-16-LE round trip and the
arbitrary-bytes no-crash property): UTF-16-BE, every input line or list item accounted for,
lone surrogates and NULs from JSON escapes, the nasty-document corpus, and big inputs.
"""

from __future__ import annotations

import codecs
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tandem_common.adapters.storage import encode_jsonl, iter_jsonl
from tandem_common.contracts import parse_s3_uri
from tandem_common.text.chunking import chunk_text
from tandem_common.text.decoding import DocumentRejected, decode_text, parse_input
from tandem_common.text.normalise import normalise_text
from tandem_common.text.wordpiece import SPECIAL_TOKENS, count_tokens

NASTY = Path(__file__).resolve().parents[1] / "fixtures" / "nasty" / "nasty.py"


def _nasty() -> Any:
    spec = importlib.util.spec_from_file_location("nasty_fixtures", NASTY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


nasty = _nasty()
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
clean_text = st.text().filter(
    lambda t: "\x00" not in t and not any(0xD800 <= ord(c) <= 0xDFFF for c in t)
)


@FAST
@given(text=clean_text)
def test_utf16_be_with_bom_roundtrips(text: str) -> None:
    assert decode_text(codecs.BOM_UTF16_BE + text.encode("utf-16-be")) == text


@FAST
@given(data=st.binary(max_size=2000))
def test_decode_text_only_ever_rejects(data: bytes) -> None:
    try:
        text = decode_text(data)
    except DocumentRejected as exc:
        assert exc.reason
    else:  # what it accepts is clean text that UTF-8 can carry
        assert "\x00" not in text
        text.encode("utf-8")


line = st.one_of(
    st.builds(
        lambda i, t: json.dumps({"id": i, "text": t}),
        st.text(min_size=1, max_size=20),
        st.text(max_size=40),
    ),
    st.builds(json.dumps, st.recursive(st.none() | st.integers() | st.text(max_size=5), st.lists)),
    st.text(max_size=30),
    st.just('{"id": "x", "text": "\\ud800"}'),
    st.just('{"id": "\\udfff", "text": "ok"}'),
    st.just('{"id": "n", "text": "a\\u0000b"}'),
)


@FAST
@given(lines=st.lists(st.one_of(line.map(str.encode), st.binary(max_size=30)), max_size=25))
def test_every_jsonl_line_is_a_document_or_a_reasoned_rejection(lines: list[bytes]) -> None:
    lines = [ln.replace(b"\n", b" ").replace(b"\r", b" ") for ln in lines]
    data = b"\n".join(lines)
    parsed = parse_input("in/x.jsonl", data)
    non_blank = sum(1 for ln in data.split(b"\n") if ln.strip())
    assert len(parsed.documents) + len(parsed.rejected) == non_blank
    assert all(r.reason for r in parsed.rejected)
    for r in parsed.rejected:  # every reported id can be written to S3/DynamoDB (UTF-8)
        r.id.encode("utf-8")
    for d in parsed.documents:
        d.id.encode("utf-8")
        d.text.encode("utf-8")
        assert "\x00" not in d.text


@FAST
@given(
    items=st.lists(
        st.one_of(
            st.none(),
            st.integers(),
            st.dictionaries(
                st.sampled_from(["id", "text", "x"]), st.text(max_size=10) | st.integers()
            ),
        ),
        max_size=20,
    )
)
def test_every_json_list_item_is_accounted(items: list[Any]) -> None:
    parsed = parse_input("x.json", json.dumps({"documents": items}).encode())
    assert len(parsed.documents) + len(parsed.rejected) == len(items)


def test_json_escapes_cannot_smuggle_nul_or_lone_surrogates() -> None:
    data = (
        b'{"id": "a", "text": "x\\u0000y"}\n'
        b'{"id": "b", "text": "\\ud800"}\n'
        b'{"id": "\\ud800", "text": "fine"}\n'
        b'{"id": "ok", "text": "fine"}\n'
    )
    parsed = parse_input("x.jsonl", data)
    assert [d.id for d in parsed.documents] == ["ok"]
    reasons = {r.id: r.reason for r in parsed.rejected}
    assert set(reasons) == {"a", "b", "line-3"}
    assert "NUL" in reasons["a"] and "surrogate" in reasons["b"] and "id" in reasons["line-3"]


@FAST
@given(rows=st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20)), max_size=10))
def test_jsonl_writer_never_fails_and_roundtrips(rows: list[dict[str, str]]) -> None:
    # st.text() includes lone surrogates: they must travel (escaped), not crash the writer
    data = encode_jsonl(rows)
    data.decode("utf-8")
    assert list(iter_jsonl(data)) == rows


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/key\x00",
        "s3://bucket/\ud800",
        "s3://bucket/",
        "s3://Bucket/key",
        "s3:/bucket/key",
        "http://bucket/key",
        "s3://bucket/" + "k" * 1025,
    ],
)
def test_parse_s3_uri_refuses(uri: str) -> None:
    with pytest.raises(ValueError):
        parse_s3_uri(uri)


@pytest.mark.parametrize(
    "key",
    ["inbox/../x.txt", "inbox/%2e%2e/%2e%2e/x.txt", "inbox/sp ace/ö ü ‮.txt", "inbox/./a//b"],
)
def test_parse_s3_uri_keeps_odd_keys_verbatim(key: str) -> None:
    assert parse_s3_uri(f"s3://bucket/{key}") == ("bucket", key)


def test_nasty_corpus_outcomes_at_the_parser() -> None:
    for name, (data, expected) in nasty.nasty_files().items():
        parsed = parse_input(f"inbox/{name}", data)
        got = {d.id: "embedded" for d in parsed.documents}
        got.update({r.id: "failed" for r in parsed.rejected})
        # empty-after-normalising documents are rejected later, by preprocess
        for d in parsed.documents:
            if not normalise_text(d.text):
                got[d.id] = "failed"
        assert got == expected, name


zw_rtl = st.text(
    alphabet=st.sampled_from([*"abc de", *nasty.ZERO_WIDTH, *nasty.RTL, *nasty.ARABIC]),
    max_size=600,
)


@FAST
@given(text=zw_rtl, chunk_tokens=st.integers(32, 128))
def test_zero_width_and_rtl_text_chunks_within_budget(text: str, chunk_tokens: int) -> None:
    norm = normalise_text(text)
    assert not any(c in norm for c in nasty.ZERO_WIDTH + nasty.RTL)
    chunks = chunk_text(norm, chunk_tokens, chunk_tokens // 4)
    assert (not norm) == (not chunks)
    for c in chunks:
        assert count_tokens(c.text) + SPECIAL_TOKENS <= chunk_tokens


def test_one_megabyte_single_line_chunks_within_budget() -> None:
    text = normalise_text(nasty.single_line_text(1_000_000))
    chunks = chunk_text(text, 256, 32)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(count_tokens(c.text) + SPECIAL_TOKENS <= 256 for c in chunks)
    assert 1000 < len(chunks) < 2000
