"""Caption sentence templates, apart from the code that fills them: the vocabulary (`attributes.caption_words`)
needs their words, and the captions need the attributes, so neither imports the other for them."""

from __future__ import annotations

VIDEO_TEMPLATES = {
    "train": (
        "a {thing} {motion} on a {bg} background",
        "{thing} {motion} against a {bg} backdrop",
        "on a {bg} background a {thing} {motion}",
        "there is a {thing} that {motion} over {bg}",
        "video of a {thing} which {motion} on {bg}",
    ),
    "test": (
        "the {thing} {motion} with a {bg} background behind it",
        "a {bg} scene where a {thing} {motion}",
        "in front of a {bg} background a {thing} {motion}",
    ),
}
PAIR_TEMPLATE = "a {thing} {motion} while a {thing2} {motion2} on a {bg} background"
IMAGE_TEMPLATES = {
    "train": (
        "a {thing} in the {position} on a {bg} background",
        "photo of a {thing} at the {position} against {bg}",
        "a {bg} picture with a {thing} in the {position}",
    ),
    "test": ("the {position} of a {bg} image holds a {thing}", "a {thing} placed in the {position} over {bg}"),
}
TEMPLATE_WORDS = {
    word
    for templates in (*VIDEO_TEMPLATES.values(), *IMAGE_TEMPLATES.values(), (PAIR_TEMPLATE,))
    for template in templates
    for word in template.replace("{", " {").split()
    if not word.startswith("{")
}
