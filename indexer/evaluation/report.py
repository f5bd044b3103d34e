"""What an evaluation leaves behind: a console table, report.json (model, data, settings, every metric, timings,
throughput), per_query.csv (each query's rank under each scorer), and PNG plots (recall@K curves, rank histogram).
The app's evaluation page reads the same folder."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from indexer.atomic import atomic_write_text
from indexer.evaluation.graded import SHARE_CUTOFFS
from indexer.evaluation.metrics import first_result_attributes
from indexer.evaluation.runner import EvalResult
from indexer.search.scoring import RerankChoice

SCORER_LABELS = {
    "itc": "ITC",
    "official": "ITM re-rank, official recipe",  # video: match logit + cosine; image: match logit
    "calibrated": "ITM re-rank, one scale",  # cosine / τ + ITM log-odds, the engine's score
    "model_choice": "the model's choice",  # the scorer and depth its validation recorded (rerank.json)
    "dual_softmax": "dual-softmax",
}
GRADED_HEADLINE = ("nDCG@10", "share@1", "share@5")


def throughput(result: EvalResult) -> dict[str, float]:
    """Items embedded per second (decode wait + encode) and ITM pairs scored per second during this run."""
    figures: dict[str, float] = {}
    embedded = result.timings.get("items_embedded", 0.0)
    spent = result.timings.get("encode_s", 0.0) + result.timings.get("decode_wait_s", 0.0)
    if embedded and spent:
        figures["items_per_s"] = embedded / spent
    if result.counts.get("itm_pairs") and result.timings.get("rerank_s"):
        figures["itm_pairs_per_s"] = result.counts["itm_pairs"] / result.timings["rerank_s"]
    return figures


def scorer_labels(result: EvalResult, model: str) -> dict[str, str]:
    """Each scorer's label; the model's choice says what it is (the scorer search uses)."""
    labels = {scorer: SCORER_LABELS.get(scorer, scorer) for scorer in result.metrics}
    if "model_choice" in labels:
        choice = RerankChoice.of_model(model)
        used = "ITC" if choice.rerank_k == 0 else f"top {choice.rerank_k} re-ranked, {SCORER_LABELS[choice.scorer]}"
        labels["model_choice"] = f"search's default ({used})"
    return labels


def graded_figures(result: EvalResult) -> dict:
    """The composed queries' graded figures by scorer (empty when the annotations carry no attributes)."""
    if result.graded is None:
        return {}
    return {
        "queries": len(result.graded.queries),
        "queries_with_a_full_match": int(np.count_nonzero(result.graded.best == _named(result))),
        "by_scorer": result.graded.figures,
    }


def first_results(result: EvalResult) -> dict[str, dict[str, float]]:
    """By scorer, how often the first result has each attribute the query names (empty without attributes)."""
    benchmark = result.benchmark
    if not benchmark.text_attributes:
        return {}
    queries, items = benchmark.text_attributes, benchmark.item_attributes()
    return {scorer: first_result_attributes(queries, items, top) for scorer, top in result.top1.items()}


def _named(result: EvalResult) -> np.ndarray:
    assert result.graded is not None
    return np.array([len(query.attributes) for query in result.graded.queries])


def build_report(result: EvalResult, model: str, annotations: Path, media_dir: Path, settings: dict) -> dict:
    # The headline is what search ranks by: the model's recorded choice when re-ranking ran, else ITC (also what a
    # model without a fusion encoder searches by); the other scorers stand beside it.
    best = "model_choice" if "model_choice" in result.metrics else "itc"
    headline = {k: result.metrics[best][f"t2v_{k}"] for k in ("R@1", "R@5", "R@10", "MdR")}
    graded = graded_figures(result)
    if graded:
        headline.update({k: graded["by_scorer"][best][k] for k in GRADED_HEADLINE})
    return {
        "benchmark": result.benchmark.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "annotations": str(annotations),
        "media": str(media_dir),
        "settings": settings,
        "counts": result.counts,
        "headline": headline,
        "headline_scorer": best,
        "scorer_labels": scorer_labels(result, model),
        "metrics": result.metrics,
        "graded": graded,
        "first_result_has_the_query's": first_results(result),
        "timings": result.timings,
        "throughput": throughput(result),
        "failures": result.failures,
    }


def write_per_query(result: EvalResult, path: Path) -> None:
    """One row per text query: its text, ground-truth items and 1-based rank under each scorer."""
    benchmark = result.benchmark
    scorers = list(result.ranks)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "text", "ground_truth", *[f"rank_{s}" for s in scorers]])
        for query, text in enumerate(benchmark.texts):
            truth = "|".join(benchmark.items[i].key for i in benchmark.text_to_items[query])
            writer.writerow([query, text, truth, *[int(result.ranks[s]["t2v"][query]) + 1 for s in scorers]])


def write_composed(result: EvalResult, path: Path) -> None:
    """One row per composed query: its text, attributes, the most any item holds, and its first result's overlap
    under each scorer."""
    assert result.graded is not None
    graded = result.graded
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "text", "attributes", "best_overlap", *[f"first_overlap_{s}" for s in graded.first]])
        for row, query in enumerate(graded.queries):
            attributes = json.dumps(query.attributes, sort_keys=True)
            firsts = [int(first[row]) for first in graded.first.values()]
            writer.writerow([row, query.text, attributes, int(graded.best[row]), *firsts])


def write_plots(result: EvalResult, folder: Path, labels: dict[str, str]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    written = []
    cutoffs = np.arange(1, 51)
    figure, axes = plt.subplots(figsize=(6, 4))
    for scorer, ranks in result.ranks.items():
        curve = [(ranks["t2v"] < k).mean() for k in cutoffs]
        axes.plot(cutoffs, curve, label=labels.get(scorer, scorer))
    axes.set(xlabel="K", ylabel="text-to-visual recall@K", ylim=(0, 1.02), title=result.benchmark.name)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    written.append(folder / "recall_at_k.png")
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)
    figure, axes = plt.subplots(figsize=(6, 4))
    top = max(10, int(max(r["t2v"].max() for r in result.ranks.values())) + 1)
    bins = np.unique(np.geomspace(1, top + 1, 20).astype(int))
    for scorer, ranks in result.ranks.items():
        axes.hist(ranks["t2v"] + 1, bins=bins, alpha=0.5, label=labels.get(scorer, scorer))
    axes.set(xscale="log", xlabel="rank of the right item (log scale)", ylabel="queries", title="rank histogram")
    axes.legend()
    figure.tight_layout()
    written.append(folder / "rank_histogram.png")
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)
    if result.graded is not None:
        figure, axes = plt.subplots(figsize=(6, 4))
        for scorer, figures in result.graded.figures.items():
            label = f"{labels.get(scorer, scorer)} (nDCG@10 {figures['nDCG@10']:.2f})"
            axes.plot(SHARE_CUTOFFS, figures["share_curve"], marker="o", label=label)
        axes.set(
            xlabel="first K results",
            ylabel="share of the best achievable attributes",
            ylim=(0, 1.02),
            title=f"composed queries ({len(result.graded.queries)}): attribute overlap",
        )
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
        figure.tight_layout()
        written.append(folder / "graded_share_at_k.png")
        figure.savefig(written[-1], dpi=110)
        plt.close(figure)
    return written


def save_report(report: dict, result: EvalResult, folder: Path) -> list[Path]:
    """Write report.json (last, atomically: a folder with report.json is complete), per_query.csv and plots."""
    folder.mkdir(parents=True, exist_ok=True)
    write_per_query(result, folder / "per_query.csv")
    files = [folder / "per_query.csv"]
    if result.graded is not None:
        write_composed(result, folder / "composed_queries.csv")
        files.append(folder / "composed_queries.csv")
    files += write_plots(result, folder, report.get("scorer_labels", SCORER_LABELS))
    atomic_write_text(folder / "report.json", json.dumps(report, indent=1, default=float) + "\n")
    return [folder / "report.json", *files]


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    counts = report["counts"]
    table = Table(
        "scorer",
        *[f"{d} {m}" for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MdR")],
        "RSUM",
        title=f"{report['benchmark']}: {counts['texts_evaluated']} texts × {counts['items_evaluated']} items",
    )
    labels = report.get("scorer_labels", SCORER_LABELS)
    for scorer, metrics in report["metrics"].items():
        cells = []
        for direction in ("t2v", "v2t"):
            cells += [f"{100 * metrics[f'{direction}_R@{k}']:.1f}" for k in (1, 5, 10)]
            cells.append(f"{metrics[f'{direction}_MdR']:.0f}")
        table.add_row(labels.get(scorer, scorer), *cells, f"{100 * metrics['RSUM']:.1f}")
    console = Console()
    console.print(table)
    graded = report.get("graded")
    if graded:
        table = Table(
            "scorer",
            *GRADED_HEADLINE,
            "full match first",
            title=f"composed queries: {graded['queries']} ({graded['queries_with_a_full_match']} fully held by an "
            "item)",
        )
        for scorer, figures in graded["by_scorer"].items():
            full = figures.get("full_match_first")
            cells = [f"{figures[name]:.3f}" for name in GRADED_HEADLINE] + ["-" if full is None else f"{full:.3f}"]
            table.add_row(labels.get(scorer, scorer), *cells)
        console.print(table)
    console.print(f"search ranks by: {labels.get(report['headline_scorer'], report['headline_scorer'])}")
    excluded = counts["items_missing"] + counts["items_failed"]
    if excluded:
        console.print(
            f"[yellow]{counts['items_missing']} items missing and {counts['items_failed']} unreadable were "
            f"excluded ({counts['texts_dropped']} texts with them); see failures in report.json[/yellow]"
        )
    speed = report["throughput"]
    if speed:
        console.print(", ".join(f"{name.replace('_per_s', '')}/s {value:.1f}" for name, value in speed.items()))
