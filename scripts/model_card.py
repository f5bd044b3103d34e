"""The bundled model's card, README.md in its folder: what it is, how `scripts/bundled_model.py` made it (in the words
of the arguments it ran with), and what it scores on the test split and on fresh seeds, per scorer."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from indexer.synthetic.quality import MARGIN
from mplug2.config import MPLUG2Config
from mplug2.folder import CONFIG


def write_model_card(folder: Path, report: dict, args: argparse.Namespace, sharpen_start_size: int) -> None:
    """README.md in the model folder: what it is, how it was made (`args`: the recipe's; `sharpen_start_size`: the
    input size of the model the sharpen stages started from), what it scores, per query group and scorer."""
    groups = report["groups"]
    labels = scorer_labels(report["rerank_k"])
    rows = []
    for scorer, figures in groups.items():
        matches = figures["first_result_has_the_query's"]
        ratio = figures["twin_ratio"]
        rows.append(
            f"| {labels[scorer]} | {figures['t2v_R@1']:.3f} | {matches.get('colour', 0):.2f} | "
            f"{matches.get('shape', 0):.2f} | {matches.get('motion', 0):.2f} | "
            f"{figures['motion_direction_t2v_R@1']:.3f} | {_figure(figures['direction_twins_t2v_R@1'])} "
            f"({_figure(ratio, '.2f')}x) | {figures['one_frame_t2v_R@1']:.3f} | "
            f"{figures['image_t2i_R@1']:.3f} |"
        )
    choice = report["model_choice"] or {}
    config = MPLUG2Config.from_json(folder / CONFIG)
    folder.joinpath("README.md").write_text(
        "# mplug2-synth\n\n"
        f"The mPLUG-2 retrieval architecture at the `mplug2-small` size, {config.image_size} px input "
        f"({architecture_words(config)}), trained from random weights on the project's synthetic shapes benchmark "
        "(seed 0: 4000 videos, 1000 images) with ITC + ITM on 2 CPU cores. It knows nothing outside the benchmark.\n\n"
        "Rebuild: `make bundled-model` (python scripts/bundled_model.py --install). These weights: "
        + first_stages_words(args)
        + "".join(
            f"; motion stage {number} ({motion_stage_words(args, steps, share, number)}) and its ITM stage "
            f"({args.final_itm_minutes:.0f} minutes)"
            for number, (steps, share) in enumerate(args.motion_stages, start=1)
        )
        + sharpen_words(args.sharpen, sharpen_start_size, partial_words(args))
        + visual_tower_words(args)
        + f". Re-ranking chosen on {choice.get('chosen_by', 'validation').removeprefix('validation on ')}: "
        f"{rerank_summary(choice)}.\n\n"
        f"Held-out test split ({report['test_videos']} videos, {report['test_images']} images; colour, shape, motion "
        f"combinations never seen in training; {report['direction_twin_pairs']} direction twins):\n\n"
        "| scorer | t2v R@1 | first result's colour | shape | motion | direction queries R@1 | "
        "twin set R@1 (ratio to no twins) | one frame R@1 | image t2i R@1 |\n|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + fresh_seeds_section(report["fresh_seeds"])
        + "\n\nEvery figure, by metric and direction: metrics.json. Measured with `python scripts/bundled_model.py` "
        "(the last step), or for any seed: `mplug2-search make-synthetic --seed S --videos 0 --images 0` then "
        "`mplug2-search eval --benchmark jsonl --annotations S/annotations/test_videos.jsonl --media S`.\n"
    )


def scorer_labels(rerank_k: int) -> dict[str, str]:
    return {
        "itc": "ITC (dual encoder)",
        "model_choice": "the model's choice (engine default)",
        "calibrated": f"re-ranked top {rerank_k}, one scale",
        "official": f"re-ranked top {rerank_k}, official recipe",
    }


def fresh_seeds_section(summaries: dict[str, dict]) -> str:
    """The card's table of R@1 on synthetic sets made with seeds the recipe never saw, by scorer."""
    if not summaries:
        return ""
    rows = [
        f"| {seed} | {scorer_labels(summary['rerank_k'])[scorer]} | {row['t2v_R@1']:.3f} | {row['t2i_R@1']:.3f} | "
        f"{row['twin_set_R@1']:.3f} | {row['same_queries_without_twins_R@1']:.3f} | {row['twin_ratio']:.2f}x | "
        f"{_first(row, 'colour')} | {_first(row, 'shape')} | {_first(row, 'motion')} | "
        f"{_graded(row, 'videos', 'share@1')} | {_graded(row, 'videos', 'share@5')} | "
        f"{_graded(row, 'videos', 'nDCG@10')} | {_graded(row, 'images', 'share@1')} |"
        for seed, summary in summaries.items()
        for scorer, row in summary["rows"].items()
    ]
    first = next(iter(summaries.values()))["items"]
    return (
        f"\n\nSynthetic sets made with seeds never trained or tuned on ({first['videos']} test videos, "
        f"{first['images']} test images, direction twins; `make heldout-eval SEED=S`). Composed queries: 200 "
        "attribute combinations per set, half held in full by no item; share@K is the share of the best achievable "
        "attributes held by the first K results:\n\n"
        "| seed | scorer | t2v R@1 | t2i R@1 | twin set R@1 | same queries without twins | twin ratio | "
        "first video's colour | shape | motion | composed video share@1 | share@5 | nDCG@10 | "
        "composed image share@1 |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )


def _first(row: dict, attribute: str) -> str:
    """How often a fresh seed's first video has the query's `attribute` ("-" for a summary measured without it)."""
    return _figure((row.get("first_video_has_the_query's") or {}).get(attribute), ".2f")


def _graded(row: dict, kind: str, name: str) -> str:
    """A composed-query figure of a fresh-seed row ("-" for a summary measured without them)."""
    figures = row.get(f"composed_{kind}") or {}
    return _figure(figures.get(name), ".3f")


def architecture_words(config: MPLUG2Config) -> str:
    if config.vision.stem == "patch":
        return "no additions: every official module, nothing else"
    if config.vision.has_patch_kernel:
        return (
            "every official module, and one addition: strided convolutions beside the ViT's patch kernel, their "
            "features added to its patch features"
        )
    return f"every official module, and one addition: a {config.vision.stem} stem in place of the ViT's patch kernel"


def first_stages_words(args: argparse.Namespace) -> str:
    """The card's words for what the motion stages started from."""
    tower = "the visual tower, given convolutions beside its patch kernel," if args.conv_branch else "the visual tower"
    labelled_first = args.label_steps > 0 and not args.visual_tower
    labels = label_stage_words(args, tower, args.label_steps, args.label_attributes) if labelled_first else ""
    if args.start_from is not None:
        start = f"started from {args.start_from_note or args.start_from.name}"
        return "; ".join(filter(None, (start, labels)))
    start = "the label stage" if labels else "random weights"
    joint = (
        f"joint ITC + ITM from {start} (lr {args.lr}, batch {args.batch_size}, {args.hard_batches:.0%} of "
        "batches mined from the model's nearest neighbours from epoch 2, items of one description never each other's "
        f"negatives, {args.minutes:.0f} minutes); an ITM stage on frozen encoders ({args.itm_minutes:.0f} minutes)"
    )
    return "; ".join(filter(None, (labels, joint)))


def label_stage_words(args: argparse.Namespace, tower: str, steps: int, attributes: str) -> str:
    return (
        f"a label stage ({steps} steps at {args.label_size} px: {tower} names {_listed(attributes.split('+'))} of "
        "freshly rendered training frames)"
    )


def visual_tower_words(args: argparse.Namespace) -> str:
    """The card's words for the last stages, a fresh visual tower in place of the model's ('' without one)."""
    if not args.visual_tower:
        return ""
    fresh_tower = f"a fresh {args.visual_tower} visual tower"
    words = (
        f"; {label_stage_words(args, fresh_tower, args.label_steps, args.label_attributes)}; that tower in place of "
        f"the model's, then {args.meet_steps} steps of the motion recipe at lr {args.meet_lr:g} with the text tower "
        "(and the universal layers) held still, so the new tower learns to meet text embeddings that already tell the "
        "attributes apart"
    )
    if not args.polish_steps:
        return words
    polish = f"{args.polish_steps} steps of it with every weight at lr {args.polish_lr:g}"
    if not args.relabel_steps:
        return f"{words}, then {polish}"
    relabel = label_stage_words(args, "its own tower", args.relabel_steps, args.relabel_attributes)
    again = f"{args.polish_steps} more steps of the motion recipe with every weight at lr {args.polish_lr:g}"
    return f"{words}, then {polish}; {relabel}; then {again}"


def _listed(words: Sequence[str]) -> str:
    """['shape', 'colour', 'size'] → 'shape, colour and size'."""
    return " and ".join(filter(None, (", ".join(words[:-1]), words[-1])))


def sharpen_words(stages: Sequence, start_size: int, partial: str = "") -> str:
    """The card's words for the sharpen stages (bundled_model.SharpenStage records; empty when skipped), the first
    from a model of input size `start_size`, with `partial` (partial_words) in each."""
    words = []
    for number, stage in enumerate(stages, start=1):
        resized = ", its position grid resized" if stage.size != start_size else ""
        start = f"from the {start_size} px model{resized}" if number == 1 else f"from sharpen stage {number - 1}"
        negatives = f", caption negatives swapping only {' or '.join(stage.attributes)}" if stage.attributes else ""
        words.append(
            f"; sharpen stage {number} ({stage.steps} steps at {stage.size} px input {start}, lr {stage.lr:g}, "
            f"seed {number - 1}{negatives}{partial}, otherwise as the last motion stage)"
        )
    return "".join(words)


def partial_words(args: argparse.Namespace) -> str:
    """The card's words for the sharpen stages' partial captions (empty when off)."""
    if args.partial_captions <= 0:
        return ""
    kept = " and ".join(args.partial_attributes.split("+"))
    return f", {args.partial_captions:.0%} of the captions cut down to their {kept} phrases"


def motion_stage_words(args: argparse.Namespace, steps: int, share: float, number: int) -> str:
    """The card's words for one motion stage: the whole recipe for the first, what differs for the next ones."""
    if number > 1:
        return f"{steps} steps, as stage 1 but with {share:.0%} of the samples given a caption negative"
    return (
        f"{steps} steps at lr {args.motion_lr}: {args.twins:.0%} of the videos whose caption names a direction "
        "joined in their batch by their time-reversed twin with the opposite caption, "
        f"{share:.0%} of the samples with a caption negative that swaps one shape, motion, size or position phrase, "
        f"hard batches as before, {args.itm_random_negatives:.0%} of ITM negatives at random{separation(args)}"
    )


def separation(args: argparse.Namespace) -> str:
    """The card's words for what keeps the towers from staying blind to time order (empty when off)."""
    if args.separation_margin <= 0:
        return ""
    return (
        f", each caption and its caption negative, each twin and its original, caption and video, kept below cosine "
        f"{args.separation_margin} within their own encoder by a hinge on their distance, the temporal adapters at "
        f"{args.temporal_lr_scale:g}x the learning rate"
    )


def _figure(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def rerank_summary(choice: dict) -> str:
    if not choice:
        return "none recorded"
    if not choice.get("rerank_k"):
        return f"re-ranking off (it did not beat ITC by {MARGIN * 100:.0f} points of R@1 on both videos and images)"
    return f"re-rank the top {choice['rerank_k']} with the one-scale score"
