"""A small pure-Python BERT WordPiece token counter over the model's vocab (vocab.txt).

Mirrors the uncased BERT tokenizer: clean text, CJK characters as single tokens, lowercase,
strip accents (NFD, drop Mn), split on whitespace and punctuation, then greedy
longest-match-first WordPiece with `##` continuations; a word over 100 chars is one [UNK].
The count is additive over whitespace-separated words, which the chunker relies on.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib import resources

MAX_CHARS_PER_WORD = 100
SPECIAL_TOKENS = 2  # [CLS] and [SEP]


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    text = resources.files("tandem_common.text").joinpath("vocab.txt").read_text(encoding="utf-8")
    return frozenset(line.rstrip("\n") for line in text.splitlines() if line)


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in {"Cc", "Cf", "Co", "Cs", "Cn"} and ch != " "


def basic_tokens(text: str) -> list[str]:
    """BERT basic tokenisation (uncased) of `text`."""
    chars: list[str] = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            chars.append(" ")
        elif _is_cjk(cp):
            chars.extend((" ", ch, " "))
        else:
            chars.append(ch)
    out: list[str] = []
    for word in "".join(chars).split():
        word = unicodedata.normalize("NFD", "".join(c.lower() for c in word))  # no final-sigma rule
        word = "".join(c for c in word if unicodedata.category(c) != "Mn")
        current: list[str] = []
        for ch in word:
            if _is_punctuation(ch):
                if current:
                    out.append("".join(current))
                    current = []
                out.append(ch)
            else:
                current.append(ch)
        if current:
            out.append("".join(current))
    return out


def wordpiece(token: str) -> list[str]:
    """Greedy longest-match-first WordPiece of one basic token."""
    vocab = vocabulary()
    if len(token) > MAX_CHARS_PER_WORD:
        return ["[UNK]"]
    pieces: list[str] = []
    start = 0
    while start < len(token):
        end = len(token)
        found = None
        while start < end:
            piece = token[start:end]
            if start > 0:
                piece = "##" + piece
            if piece in vocab:
                found = piece
                break
            end -= 1
        if found is None:
            return ["[UNK]"]
        pieces.append(found)
        start = end
    return pieces


def tokenize(text: str) -> list[str]:
    return [p for tok in basic_tokens(text) for p in wordpiece(tok)]


# Printable ASCII: basic tokenisation is lowercase + split off each punctuation character.
_ASCII_TOKEN = re.compile(r"[a-z0-9]+|[^a-z0-9 ]")


@lru_cache(maxsize=65536)
def count_word(word: str) -> int:
    """Tokens of one whitespace-free word (cached)."""
    if word.isascii() and word.isprintable():
        tokens = _ASCII_TOKEN.findall(word.lower())
    else:
        tokens = basic_tokens(word)
    return sum(len(wordpiece(tok)) for tok in tokens)


def count_tokens(text: str) -> int:
    """Content tokens of `text` (without [CLS]/[SEP])."""
    return sum(count_word(w) for w in text.split())
