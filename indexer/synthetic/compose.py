"""Composed queries for graded evaluation of a synthetic set: attribute combinations worded as its test captions are,
half of them held in full by some item of the set and half by none (a user's query no clip fully matches)."""

from __future__ import annotations

import numpy as np

from indexer.evaluation.graded import ComposedQuery
from indexer.synthetic.attributes import COLOURS, SHAPES, ShapeSpec, valid_motion
from indexer.synthetic.captions import image_caption, video_caption

NAMES = {
    "video": ("size", "colour", "shape", "motion", "background"),
    "image": ("size", "colour", "shape", "position", "background"),
}
SIZELESS_MOTIONS = ("growing", "shrinking")  # their size changes: captions name none
COMPOSED_QUERIES = 200


def _combo(attributes: dict, names: tuple[str, ...]) -> tuple:
    return tuple(attributes.get(name) for name in names)


def _query(combo: tuple, names: tuple[str, ...], kind: str, rng: np.random.Generator) -> ComposedQuery:
    named = {name: value for name, value in zip(names, combo, strict=True) if value is not None}
    spec = ShapeSpec(
        named["colour"], named["shape"], named.get("motion", "still"), named.get("size"), named.get("position")
    )
    if kind == "video":
        text = video_caption([spec], named["background"], "test", rng)
    else:
        text = image_caption(spec, named["background"], "test", rng)
    return ComposedQuery(text, named)


def composed_queries(
    item_attributes: list[dict], kind: str, count: int = COMPOSED_QUERIES, seed: int = 0
) -> list[ComposedQuery]:
    """`count` queries over the items' attribute values (none when the items carry no synthetic attributes): half
    the combinations of items picked at random, half random combinations that no item holds in full."""
    names = NAMES[kind]
    items = [
        attributes
        for attributes in item_attributes
        if attributes.get("colour") in COLOURS and attributes.get("shape") in SHAPES and "background" in attributes
    ]
    if not items or count <= 0:
        return []
    rng = np.random.default_rng(seed)
    held = {_combo(attributes, names) for attributes in items}
    picked = rng.choice(len(items), size=min(count // 2, len(items)), replace=False)
    combos = [_combo(items[int(i)], names) for i in picked]
    values = {name: sorted({str(a[name]) for a in items if a.get(name) is not None}) for name in names}
    unheld: set[tuple] = set()
    for _ in range(100 * count):  # bounded: a tiny set may hold nearly every combination
        if len(combos) + len(unheld) >= count:
            break
        named = {name: values[name][int(rng.integers(len(values[name])))] for name in names if values[name]}
        if named.get("motion") in SIZELESS_MOTIONS:
            named.pop("size", None)
        if not valid_motion(named["shape"], named.get("motion", "still")):
            continue
        combo = _combo(named, names)
        if combo not in held:
            unheld.add(combo)
    combos += sorted(unheld, key=str)
    return [_query(combo, names, kind, rng) for combo in combos]
