"""BERT uncased WordPiece tokenisation (through `tokenizers`) with the official caption normalisation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_PUNCTUATION = re.compile(r"([,.'!?\"()*#:;~])")
_SPACES = re.compile(r"\s{2,}")


def pre_caption(caption: str, max_words: int | None = None) -> str:
    """mPLUG's caption normalisation: lower-case, drop ,.'!?"()*#:;~, map - and / to spaces, collapse spaces,
    keep at most `max_words` words."""
    text = _PUNCTUATION.sub("", caption.lower()).replace("-", " ").replace("/", " ").replace("<person>", "person")
    text = _SPACES.sub(" ", text).strip()
    if max_words is not None:
        text = " ".join(text.split(" ")[:max_words])
    return text


class Tokenizer:
    """Captions → padded `input_ids` and `attention_mask` tensors, `[CLS] ... [SEP] [PAD]...`."""

    def __init__(self, vocab_file: str | Path, max_words: int | None = 40) -> None:
        from tokenizers import BertWordPieceTokenizer

        self.vocab_file = Path(vocab_file)
        if not self.vocab_file.is_file():
            raise FileNotFoundError(
                f"{self.vocab_file}: vocabulary file not found. Use a model folder that carries its vocab.txt, or "
                "point at bert-base-uncased's vocab.txt."
            )
        self._tokenizer = BertWordPieceTokenizer(str(self.vocab_file), lowercase=True)
        missing = [t for t in SPECIAL_TOKENS if self._tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"{self.vocab_file} lacks BERT's special tokens {missing}")
        self.pad_id = self._tokenizer.token_to_id("[PAD]")
        self.max_words = max_words

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    def __call__(self, captions: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, both `[N, max_length]` (truncated and right-padded)."""
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.enable_padding(length=max_length, pad_id=self.pad_id)
        encodings = self._tokenizer.encode_batch([pre_caption(c, self.max_words) for c in captions])
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
        return ids, mask

    def tokens(self, caption: str) -> list[str]:
        """The word pieces of one caption (for showing what the model reads)."""
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        return self._tokenizer.encode(pre_caption(caption, self.max_words)).tokens


def write_vocab(words: Sequence[str], path: str | Path) -> Path:
    """A WordPiece vocab file: BERT's special tokens, then `words` (deduplicated, order kept)."""
    seen: dict[str, None] = dict.fromkeys(SPECIAL_TOKENS)
    for word in words:
        seen.setdefault(word.strip().lower(), None)
    seen.pop("", None)
    Path(path).write_text("\n".join(seen) + "\n")
    return Path(path)
