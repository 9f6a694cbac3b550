"""Input bytes → documents. Every bad line or document becomes a failure with a reason.

Formats (CONTRACTS.md): `.jsonl` (`{"id","text"}` per line), `.json` (`{"documents":[...]}`),
anything else is one document whose id is the key's basename. Text is UTF-8 (a UTF-8 BOM is
stripped) or UTF-16 with a BOM; NUL bytes or invalid UTF-8 reject that document.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from tandem_common.contracts import input_format

MAX_ID_LENGTH = 256


class DocumentRejected(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class InputDocument:
    id: str
    text: str


@dataclass(frozen=True)
class RejectedDocument:
    id: str
    reason: str


@dataclass
class ParsedInput:
    documents: list[InputDocument] = field(default_factory=list)
    rejected: list[RejectedDocument] = field(default_factory=list)


def decode_text(data: bytes) -> str:
    """Decode document bytes: UTF-16 (BOM) or UTF-8 strict (BOM stripped); no NUL characters."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise DocumentRejected(f"invalid UTF-16 at byte {exc.start}") from exc
    else:
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        try:
            text = data.decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise DocumentRejected(f"invalid UTF-8 at byte {exc.start}") from exc
    check_text(text)
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")  # a C-speed scan: this runs over every document


def check_text(text: str) -> None:
    if "\x00" in text:
        raise DocumentRejected("text contains NUL bytes")
    if _SURROGATE.search(text):
        raise DocumentRejected("text contains unpaired surrogates")


def _document_from(obj: Any, fallback_id: str) -> InputDocument:
    if not isinstance(obj, dict):
        raise DocumentRejected('expected an object {"id", "text"}')
    doc_id, text = obj.get("id"), obj.get("text")
    if not isinstance(doc_id, str) or not doc_id or len(doc_id) > MAX_ID_LENGTH:
        raise DocumentRejected(f"'id' must be a non-empty string of at most {MAX_ID_LENGTH} chars")
    if not _valid_id(doc_id):
        raise DocumentRejected("'id' must be Unicode text without NUL or unpaired surrogates")
    if not isinstance(text, str):
        raise DocumentRejected("'text' must be a string")
    check_text(text)
    return InputDocument(id=doc_id, text=text)


def _add(out: ParsedInput, seen: set[str], doc: InputDocument) -> None:
    if doc.id in seen:
        out.rejected.append(RejectedDocument(doc.id, "duplicate document id"))
    else:
        seen.add(doc.id)
        out.documents.append(doc)


def _valid_id(doc_id: str) -> bool:
    """An id must survive UTF-8 (S3, DynamoDB): JSON escapes can carry lone surrogates."""
    return "\x00" not in doc_id and not any(0xD800 <= ord(c) <= 0xDFFF for c in doc_id)


def _id_of(obj: Any, fallback: str) -> str:
    """The id a rejected document is reported under: its own if usable, else its position."""
    if isinstance(obj, dict) and isinstance(obj.get("id"), str) and obj["id"]:
        doc_id = str(obj["id"])[:MAX_ID_LENGTH]
        return doc_id if _valid_id(doc_id) else fallback
    return fallback


Parsed = InputDocument | RejectedDocument


def iter_jsonl(lines: Iterable[bytes]) -> Iterator[Parsed]:
    """JSONL lines (split on b"\\n") → each document or rejection, in order, one line at a time.

    Numbering counts every line, blank ones included, so a rejected line is `line-N` of the
    file; a UTF-8 BOM on the first line is dropped; UTF-16 (a BOM on the first line) is read
    whole, as text."""
    seen: set[str] = set()
    it = iter(lines)
    first = next(it, None)
    if first is None:
        return
    if first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        data = b"\n".join([first, *it])
        try:
            decoded = [ln.encode() for ln in decode_text(data).splitlines()]
        except DocumentRejected as exc:
            yield RejectedDocument("line-1", exc.reason)
            return
        it, first = iter(decoded[1:]), (decoded[0] if decoded else b"")
    for number, raw in enumerate(chain([first.removeprefix(codecs.BOM_UTF8)], it), start=1):
        if raw.strip():
            yield _jsonl_line(raw, f"line-{number}", seen)


def _jsonl_line(raw: bytes, fallback: str, seen: set[str]) -> Parsed:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RejectedDocument(fallback, f"invalid UTF-8 at byte {exc.start}")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return RejectedDocument(fallback, f"malformed JSON: {exc.msg}")
    try:
        doc = _document_from(obj, fallback)
    except DocumentRejected as exc:
        return RejectedDocument(_id_of(obj, fallback), exc.reason)
    if doc.id in seen:
        return RejectedDocument(doc.id, "duplicate document id")
    seen.add(doc.id)
    return doc


def collect(items: Iterable[Parsed]) -> ParsedInput:
    out = ParsedInput()
    for item in items:
        if isinstance(item, InputDocument):
            out.documents.append(item)
        else:
            out.rejected.append(item)
    return out


def parse_jsonl(data: bytes) -> ParsedInput:
    return collect(iter_jsonl(data.split(b"\n")))


def parse_json(data: bytes, name: str) -> ParsedInput:
    out, seen = ParsedInput(), set[str]()
    try:
        payload = json.loads(decode_text(data))
    except DocumentRejected as exc:
        out.rejected.append(RejectedDocument(name, exc.reason))
        return out
    except json.JSONDecodeError as exc:
        out.rejected.append(RejectedDocument(name, f"malformed JSON: {exc.msg}"))
        return out
    docs = payload.get("documents") if isinstance(payload, dict) else None
    if not isinstance(docs, list):
        out.rejected.append(RejectedDocument(name, 'expected {"documents": [...]}'))
        return out
    for number, obj in enumerate(docs):
        fallback = f"document-{number}"
        try:
            _add(out, seen, _document_from(obj, fallback))
        except DocumentRejected as exc:
            out.rejected.append(RejectedDocument(_id_of(obj, fallback), exc.reason))
    return out


def parse_plain(data: bytes, name: str) -> ParsedInput:
    out = ParsedInput()
    try:
        out.documents.append(InputDocument(id=name, text=decode_text(data)))
    except DocumentRejected as exc:
        out.rejected.append(RejectedDocument(name, exc.reason))
    return out


def parse_input(key: str, data: bytes) -> ParsedInput:
    """Dispatch on the key's format (`contracts.input_format`, see the module docstring)."""
    name = key.rsplit("/", 1)[-1] or key
    kind = input_format(name)
    if kind == "jsonl":
        return parse_jsonl(data)
    if kind == "json":
        return parse_json(data, name)
    return parse_plain(data, name[:MAX_ID_LENGTH])
