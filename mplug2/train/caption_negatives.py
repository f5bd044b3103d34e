"""Caption negatives: a sample's caption with one attribute changed ("a red star rises" → "a red hexagon rises").

In-batch ITC negatives mostly differ from the positive in what is easiest to see (colour, background), so a model
can rank well inside a batch while staying blind to shape or motion. A caption that differs in exactly one attribute
is a negative the video must score below its own caption, in ITC and in ITM: the loss then falls only if the visual
tokens carry that attribute. Which words are attributes, and which values exclude each other, is data (a JSON file
of groups), so the recipe works for any captions whose vocabulary a user can list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

# {"shape": {"circle": ["circle", "disc"], "square": ["square", "block"]}, "motion": {...}}: within a group, the
# phrases of different values exclude each other; phrases of one value are synonyms.
AttributeWords = Mapping[str, Mapping[str, Sequence[str]]]


class AttributeSwapper:
    def __init__(self, groups: AttributeWords) -> None:
        self.groups = {
            group: {value: tuple(p.lower() for p in phrases) for value, phrases in values.items()}
            for group, values in groups.items()
        }
        self.meaning: dict[str, tuple[str, str]] = {}  # phrase -> (group, value)
        for group, values in self.groups.items():
            if len(values) < 2:
                raise ValueError(f"attribute group {group!r} needs at least two values to swap between")
            for value, phrases in values.items():
                for phrase in phrases:
                    if self.meaning.setdefault(phrase, (group, value)) != (group, value):
                        raise ValueError(f"the phrase {phrase!r} names two attribute values")
        # Longest phrase first, whole words only: "five pointed star" wins over "star", and "big" never matches
        # inside "bigger".
        phrases = sorted(self.meaning, key=len, reverse=True)
        self._pattern = re.compile(r"\b(" + "|".join(re.escape(p) for p in phrases) + r")\b")

    def named(self, caption: str) -> list[tuple[str, str, str]]:
        """The attribute phrases the caption names, in order: (phrase, group, value) each."""
        return [(m.group(1), *self.meaning[m.group(1)]) for m in self._pattern.finditer(caption.lower())]

    def values(self, caption: str) -> dict[str, str]:
        """{group: value} of the attributes the caption names (the last phrase wins if a group is named twice)."""
        return {group: value for _, group, value in self.named(caption)}

    def negative(self, caption: str, rng: np.random.Generator) -> str | None:
        """The caption with one attribute phrase (chosen at random) replaced by a phrase of another value of its
        group; None when the caption names no attribute."""
        text = caption.lower()
        matches = list(self._pattern.finditer(text))
        if not matches:
            return None
        match = matches[int(rng.integers(len(matches)))]
        group, value = self.meaning[match.group(1)]
        others = [other for other in self.groups[group] if other != value]
        phrases = self.groups[group][others[int(rng.integers(len(others)))]]
        return text[: match.start()] + phrases[int(rng.integers(len(phrases)))] + text[match.end() :]


def read_attribute_words(groups: Mapping) -> AttributeWords:
    """Groups from JSON, checked: {group: {value: [phrase, ...]}}."""
    if not isinstance(groups, Mapping) or not all(isinstance(values, Mapping) for values in groups.values()):
        raise ValueError('attribute words must be a JSON object {"group": {"value": ["phrase", ...]}}')
    return {
        str(group): {str(value): [str(p) for p in phrases] for value, phrases in values.items()}
        for group, values in groups.items()
    }
