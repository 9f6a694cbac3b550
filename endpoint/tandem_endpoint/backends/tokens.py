"""Tokenizing once: the model's WordPiece tokenizer, returning padded numpy arrays.

Every backend that runs the model tokenizes with `WordPieceTokenizer`, on the server's tokenizer
pool, and gets `Tokens` in its forward pass; nothing tokenizes twice.

The fast path: for printable ASCII text the model's BertNormalizer (clean text, CJK spacing,
accent stripping, lowercasing; half of the tokenizer's time, with its character alignment
bookkeeping) reduces to lowercasing, so such texts are lowercased in Python and tokenized with
no normaliser. Same ids, about twice the sentences per core (`bench/feed_bench.py`); every other
text takes the full tokenizer. `test_ascii_fast_path_gives_the_full_tokenizers_ids` checks it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer, normalizers

# Printable ASCII plus the three whitespace controls the normaliser turns into spaces (which the
# pre-tokenizer then splits on, like spaces). Any other control character is removed by the
# normaliser, so a text that has one takes the full tokenizer.
_PLAIN_TEXT = re.compile(r"[\x20-\x7e\t\n\r]*")


@dataclass(frozen=True)
class Tokens:
    """Token ids of `n` texts: `ids[i, :lengths[i]]` is text i's sequence, the rest is 0 (pad)."""

    ids: np.ndarray  # int32 [n, width]; width = the longest sequence
    lengths: np.ndarray  # int32 [n]

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        return int(self.ids.shape[1])

    @property
    def attention_mask(self) -> np.ndarray:
        return np.arange(self.width, dtype=np.int32)[None, :] < self.lengths[:, None]

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]]) -> Tokens:
        lengths = np.fromiter(map(len, sequences), dtype=np.int32, count=len(sequences))
        ids = np.zeros((len(sequences), int(lengths.max()) if len(sequences) else 0), np.int32)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = seq
        return cls(ids, lengths)

    @classmethod
    def empty(cls) -> Tokens:
        return cls(np.zeros((0, 0), np.int32), np.zeros(0, np.int32))


class WordPieceTokenizer:
    """The model directory's `tokenizer.json`, truncating at `max_length`, no padding.

    Thread-safe: `tokenize` releases the GIL while the Rust tokenizer runs, so a pool of threads
    tokenizes on as many cores. Set TOKENIZERS_PARALLELISM=false (the server does) so each call
    stays on its own thread instead of also fanning out over a Rayon pool.
    """

    def __init__(self, model_dir: str, max_length: int, ascii_fast_path: bool = True) -> None:
        path = os.path.join(model_dir, "tokenizer.json")
        self.full = _load(path, max_length)
        self.ascii_fast_path = ascii_fast_path
        self._plain: Tokenizer | None = None
        self._lower = False
        normaliser = self.full.normalizer
        # For printable ASCII, BertNormalizer's only effect that the pre-tokenizer does not undo
        # is lowercasing (no accents, no CJK, no controls but whitespace).
        if ascii_fast_path and isinstance(normaliser, normalizers.BertNormalizer):
            self._plain = _load(path, max_length)
            self._plain.normalizer = normalizers.Sequence([])
            self._lower = bool(normaliser.lowercase)
        # The full tokenizer matches its added tokens ("[UNK]", "[CLS]", ...) in the raw text,
        # before lowercasing: a text holding one takes the full path.
        self._added = tuple(t.content for t in self.full.get_added_tokens_decoder().values())

    def tokenize(self, texts: Sequence[str]) -> Tokens:
        if not texts:
            return Tokens.empty()
        if self._plain is None:
            return Tokens.from_sequences(_ids(self.full, list(texts)))
        plain = [i for i, text in enumerate(texts) if self._is_plain(text)]
        if len(plain) == len(texts):
            return Tokens.from_sequences(_ids(self._plain, self._prepare(texts)))
        sequences: list[list[int]] = [[] for _ in texts]
        plain_set = set(plain)
        other = [i for i in range(len(texts)) if i not in plain_set]
        plain_ids = _ids(self._plain, self._prepare([texts[i] for i in plain]))
        for i, seq in zip(plain, plain_ids, strict=True):
            sequences[i] = seq
        for i, seq in zip(other, _ids(self.full, [texts[i] for i in other]), strict=True):
            sequences[i] = seq
        return Tokens.from_sequences(sequences)

    def _is_plain(self, text: str) -> bool:
        return bool(_PLAIN_TEXT.fullmatch(text)) and not any(a in text for a in self._added)

    def _prepare(self, texts: Sequence[str]) -> list[str]:
        return [t.lower() for t in texts] if self._lower else list(texts)


def _load(path: str, max_length: int) -> Tokenizer:
    tokenizer = Tokenizer.from_file(path)
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()
    return tokenizer


def _ids(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return [e.ids for e in tokenizer.encode_batch_fast(texts)]
