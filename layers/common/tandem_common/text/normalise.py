"""Text normalisation before chunking: NFC, no zero-width/format/control chars, single spaces."""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")


def _drop(ch: str) -> bool:
    category = unicodedata.category(ch)
    # Cf: zero-width space/joiners, BOM, soft hyphen...; Cc: control characters (not whitespace).
    return category == "Cf" or (category == "Cc" and not ch.isspace())


def normalise_text(text: str) -> str:
    """NFC-normalise, strip zero-width/format and control characters, collapse whitespace."""
    text = unicodedata.normalize("NFC", text)
    # Classify each distinct character once (a set is built at C speed), not every character.
    dropped = [ch for ch in set(text) if _drop(ch)]
    if dropped:
        text = text.translate(dict.fromkeys(map(ord, dropped)))
    return _WHITESPACE.sub(" ", text).strip()
