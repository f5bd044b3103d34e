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

    def __init__(self, vocab: str | Path | Sequence[str], max_words: int | None = 40) -> None:
        """`vocab`: a vocab.txt file, or the word pieces themselves (in id order)."""
        from tokenizers import BertWordPieceTokenizer

        if isinstance(vocab, (str, Path)):
            self.vocab_file: Path | None = Path(vocab)
            if not self.vocab_file.is_file():
                raise FileNotFoundError(
                    f"{self.vocab_file}: vocabulary file not found. Use a model folder that carries its vocab.txt, "
                    "or point at bert-base-uncased's vocab.txt."
                )
            self._tokenizer = BertWordPieceTokenizer(str(self.vocab_file), lowercase=True)
        else:
            self.vocab_file = None
            self._tokenizer = BertWordPieceTokenizer({word: i for i, word in enumerate(vocab)}, lowercase=True)
        missing = [t for t in SPECIAL_TOKENS if self._tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"{self.vocab_file or 'the vocabulary'} lacks BERT's special tokens {missing}")
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


def bert_vocab_prefix(vocab_file: str | Path, size: int) -> list[str]:
    """A vocabulary of `size` pieces for an architecture too small for BERT's (random weights, e.g. mplug2-tiny):
    BERT's special tokens, then its most frequent whole words (its file lists them from "the", after the unused
    slots and single characters)."""
    lines = Path(vocab_file).read_text(encoding="utf-8").splitlines()
    words = lines[lines.index("the") :]
    return list(SPECIAL_TOKENS) + words[: max(0, size - len(SPECIAL_TOKENS))]
