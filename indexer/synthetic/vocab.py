"""The bundled model's WordPiece vocabulary: every word a synthetic caption can use, plus single letters as word
pieces, so an unseen query word splits into letters instead of vanishing into [UNK]."""

from __future__ import annotations

import string
from pathlib import Path

from indexer.synthetic.attributes import caption_words
from mplug2.tokenizer import write_vocab


def write_synthetic_vocab(path: str | Path) -> Path:
    letters = list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase]
    digits = list(string.digits) + [f"##{d}" for d in string.digits]
    return write_vocab(caption_words() + letters + digits, path)
