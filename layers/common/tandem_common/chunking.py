"""Token-budget chunking with overlap, on whole words, plus in-job deduplication.

A chunk's token count (by `wordpiece.count_tokens`) plus [CLS]/[SEP] never exceeds
`chunk_tokens`. Chunks break between words; a single word longer than the budget is the only
thing ever split (into consecutive character runs, each within the budget).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tandem_common.wordpiece import SPECIAL_TOKENS, count_tokens, count_word

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # character offsets into the normalised text
    end: int
    text: str
    tokens: int


@dataclass(frozen=True)
class _Word:
    start: int
    end: int
    tokens: int


def _split_long_word(text: str, start: int, end: int, budget: int) -> Iterator[_Word]:
    """Cut one over-budget word into the longest prefixes that fit the budget."""
    pos = start
    while pos < end:
        lo, hi = pos + 1, end  # binary search the longest fitting prefix; 1 char always fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count_word(text[pos:mid]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        yield _Word(pos, lo, count_word(text[pos:lo]))
        pos = lo


def _words(text: str, budget: int) -> list[_Word]:
    words: list[_Word] = []
    for m in _WORD.finditer(text):
        tokens = count_word(m.group())
        if tokens <= budget:
            words.append(_Word(m.start(), m.end(), tokens))
        else:
            words.extend(_split_long_word(text, m.start(), m.end(), budget))
    return words


def chunk_text(text: str, chunk_tokens: int, chunk_overlap: int) -> list[Chunk]:
    """Chunk normalised `text` (single-space separated) by token budget with token overlap."""
    if chunk_tokens <= SPECIAL_TOKENS:
        raise ValueError("chunk_tokens must leave room for content")
    budget = chunk_tokens - SPECIAL_TOKENS
    words = _words(text, budget)
    chunks: list[Chunk] = []
    first = 0
    while first < len(words):
        last, used = first, 0
        while last < len(words) and used + words[last].tokens <= budget:
            used += words[last].tokens
            last += 1
        start, end = words[first].start, words[last - 1].end
        piece = text[start:end]
        chunks.append(Chunk(len(chunks), start, end, piece, count_tokens(piece)))
        if last >= len(words):
            break
        # Next chunk starts with up to `chunk_overlap` tokens of trailing words, but must
        # still fit the next new word and move forward.
        nxt, carried = last, 0
        while (
            nxt - 1 > first
            and carried + words[nxt - 1].tokens <= chunk_overlap
            and carried + words[nxt - 1].tokens + words[last].tokens <= budget
        ):
            nxt -= 1
            carried += words[nxt].tokens
        first = nxt
    return chunks


@dataclass(frozen=True)
class PlacedChunk:
    """A chunk's place in the batch files; duplicates share the first copy's batch/row."""

    chunk_id: str
    document_id: str
    chunk_index: int
    batch: int
    row: int
    text: str
    duplicate: bool


def place_chunks(
    chunks: Iterable[tuple[str, Chunk]], batch_size: int
) -> tuple[list[PlacedChunk], list[list[PlacedChunk]]]:
    """Assign unique chunk texts to batches of `batch_size` rows; dedupe exact repeats.

    Returns every chunk (in input order) and the unique chunks grouped by batch.
    """
    placed: list[PlacedChunk] = []
    batches: list[list[PlacedChunk]] = []
    first_copy: dict[str, PlacedChunk] = {}
    for document_id, chunk in chunks:
        chunk_id = f"{document_id}#{chunk.index}"
        original = first_copy.get(chunk.text)
        if original is not None:
            placed.append(
                PlacedChunk(
                    chunk_id,
                    document_id,
                    chunk.index,
                    original.batch,
                    original.row,
                    chunk.text,
                    True,
                )
            )
            continue
        if not batches or len(batches[-1]) >= batch_size:
            batches.append([])
        item = PlacedChunk(
            chunk_id,
            document_id,
            chunk.index,
            len(batches) - 1,
            len(batches[-1]),
            chunk.text,
            False,
        )
        batches[-1].append(item)
        first_copy[chunk.text] = item
        placed.append(item)
    return placed, batches
