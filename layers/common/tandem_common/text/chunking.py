"""Token-budget chunking with overlap, on whole words, plus in-job deduplication.

A chunk's token count (by `wordpiece.count_tokens`) plus [CLS]/[SEP] never exceeds
`chunk_tokens`. Chunks break between words; a single word longer than the budget is the only
thing ever split (into consecutive character runs, each within the budget).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from operator import add

from tandem_common.text.wordpiece import SPECIAL_TOKENS, count_tokens, count_word

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


def _words(text: str, budget: int) -> tuple[list[int], list[int], list[int], bool]:
    """Word starts, ends and token counts of `text`, and whether any word had to be cut.

    Fast path for normalised text (single spaces, no edge spaces): offsets come from the word
    lengths and counts from the cached `count_word`, both at C speed (`accumulate`, `map`).
    """
    words = text.split()
    if words and " ".join(words) == text:
        counts = list(map(count_word, words))
        if max(counts) <= budget:
            lens = list(map(len, words))
            starts = list(accumulate(map((1).__add__, lens[:-1]), initial=0))
            ends = list(map(add, starts, lens))
            return starts, ends, counts, False
    starts, ends, counts = [], [], []
    cut = False
    for m in _WORD.finditer(text):
        tokens = count_word(m.group())
        if tokens <= budget:
            starts.append(m.start())
            ends.append(m.end())
            counts.append(tokens)
        else:
            cut = True
            for w in _split_long_word(text, m.start(), m.end(), budget):
                starts.append(w.start)
                ends.append(w.end)
                counts.append(w.tokens)
    return starts, ends, counts, cut


def chunk_text(text: str, chunk_tokens: int, chunk_overlap: int) -> list[Chunk]:
    """Chunk normalised `text` (single-space separated) by token budget with token overlap."""
    if chunk_tokens <= SPECIAL_TOKENS:
        raise ValueError("chunk_tokens must leave room for content")
    budget = chunk_tokens - SPECIAL_TOKENS
    starts, ends, counts, cut = _words(text, budget)
    n = len(counts)
    # cum[i] = tokens of words[:i]; the words from `first` that fit are found by bisection.
    cum = [0, *accumulate(counts)]
    chunks: list[Chunk] = []
    first = 0
    while first < n:
        last = bisect_right(cum, cum[first] + budget, first + 1) - 1  # words[first:last] fit
        start, end = starts[first], ends[last - 1]
        piece = text[start:end]
        # Tokens are additive over whole words; a chunk holding pieces of a cut word is recounted.
        tokens = count_tokens(piece) if cut else cum[last] - cum[first]
        chunks.append(Chunk(len(chunks), start, end, piece, tokens))
        if last >= n:
            break
        # Next chunk starts with up to `chunk_overlap` tokens of trailing words, but must
        # still fit the next new word and move forward.
        nxt, carried = last, 0
        while (
            nxt - 1 > first
            and carried + counts[nxt - 1] <= chunk_overlap
            and carried + counts[nxt - 1] + counts[last] <= budget
        ):
            nxt -= 1
            carried += counts[nxt]
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
