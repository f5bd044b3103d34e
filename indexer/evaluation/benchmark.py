"""The benchmark record every reader produces: items (media files or spans), texts, and ground truth both ways."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RetrievalItem:
    key: str  # the benchmark's id for it (video id, image file)
    path: Path
    kind: str  # "video" or "image"
    start: float = 0.0
    end: float | None = None


@dataclass
class RetrievalBenchmark:
    name: str
    items: list[RetrievalItem]
    texts: list[str]
    text_to_items: list[list[int]]
    item_to_texts: list[list[int]] = field(default_factory=list)
    text_attributes: list[dict] = field(default_factory=list)  # per text, from annotations that carry them

    def __post_init__(self) -> None:
        if not self.item_to_texts:
            self.item_to_texts = [[] for _ in self.items]
            for text, items in enumerate(self.text_to_items):
                for item in items:
                    self.item_to_texts[item].append(text)

    @property
    def kind(self) -> str:
        return "image" if all(item.kind == "image" for item in self.items) else "video"

    def item_attributes(self) -> list[dict]:
        """Each item's attributes: those of its first text (every caption of an item describes the same item)."""
        if not self.text_attributes:
            return [{} for _ in self.items]
        return [self.text_attributes[texts[0]] if texts else {} for texts in self.item_to_texts]

    def check_media(self) -> tuple[list[int], list[int]]:
        """(indices of items whose file exists, indices of missing ones)."""
        present = [i for i, item in enumerate(self.items) if item.path.is_file()]
        missing = [i for i, item in enumerate(self.items) if not item.path.is_file()]
        return present, missing

    def subset(self, keep_items: list[int]) -> tuple[RetrievalBenchmark, int]:
        """The benchmark without the other items; texts left with no ground truth go too. Returns it and the
        number of texts dropped."""
        new_index = {old: new for new, old in enumerate(keep_items)}
        texts, truths, attributes = [], [], []
        for text, items in enumerate(self.text_to_items):
            kept = [new_index[i] for i in items if i in new_index]
            if kept:
                texts.append(self.texts[text])
                truths.append(kept)
                if self.text_attributes:
                    attributes.append(self.text_attributes[text])
        dropped = len(self.texts) - len(texts)
        subset = RetrievalBenchmark(
            self.name, [self.items[i] for i in keep_items], texts, truths, text_attributes=attributes
        )
        return subset, dropped
