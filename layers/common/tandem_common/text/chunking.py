"""Token-budget chunking with overlap, on whole words, and placing chunks into batches.

A chunk's token count (by `wordpiece.count_tokens`) plus [CLS]/[SEP] never exceeds
`chunk_tokens`. Chunks break between words; a single word longer than the budget is the only
thing ever split (into consecutive character runs, each within the budget).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    """A chunk's place in its batch: `row` of the batch's output (a repeat shares the row of
    the first copy in the same batch)."""

    chunk_id: str
    document_id: str
    chunk_index: int
    batch: int
    row: int
    duplicate: bool


@dataclass
class Batch:
    """One endpoint call's worth of chunks: the unique texts it embeds and every chunk placed."""

    index: int
    texts: list[tuple[str, str]] = field(default_factory=list)  # (chunk_id, text), unique
    chunks: list[PlacedChunk] = field(default_factory=list)
    _rows: dict[str, int] = field(default_factory=dict)

    @property
    def unique(self) -> int:
        return len(self.texts)


class BatchPlacer:
    """Places chunks into batches of up to `batch_size` unique texts, in arrival order.

    Exact repeats within a batch share one row (one embedding); a repeat of a text from an
    earlier batch is embedded again. So every chunk belongs to exactly one batch, a batch's
    result needs no other batch, and memory stays bounded by one batch whatever the job's size.
    Completed batches are handed out by `take_completed`; `finish` closes the last one.
    """

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.current = Batch(0)
        self.placed = 0
        self._completed: list[Batch] = []

    def place(self, document_id: str, chunk: Chunk) -> PlacedChunk:
        batch = self.current
        row = batch._rows.get(chunk.text)
        if row is None and batch.unique >= self.batch_size:
            self._completed.append(batch)
            batch = self.current = Batch(batch.index + 1)
        chunk_id = f"{document_id}#{chunk.index}"
        duplicate = row is not None
        if row is None:
            row = batch._rows[chunk.text] = batch.unique
            batch.texts.append((chunk_id, chunk.text))
        placed = PlacedChunk(chunk_id, document_id, chunk.index, batch.index, row, duplicate)
        batch.chunks.append(placed)
        self.placed += 1
        return placed

    def take_completed(self) -> list[Batch]:
        done, self._completed = self._completed, []
        return done

    def finish(self) -> list[Batch]:
        """The remaining batches, the last one included if it holds anything."""
        if self.current.unique:
            self._completed.append(self.current)
            self.current = Batch(self.current.index + 1)
        return self.take_completed()

    @property
    def batch_count(self) -> int:
        """Batches opened so far (the current one counts once it holds a chunk)."""
        return self.current.index + (1 if self.current.unique else 0)
