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
from indexer.evaluation.runner import EvalResult

SCORER_LABELS = {
    "itc": "ITC",
    "official": "ITM re-rank, official recipe",  # video: match logit + cosine; image: match logit
    "calibrated": "ITM re-rank, one scale",  # cosine / τ + ITM log-odds, the engine's score
    "model_choice": "the model's choice",  # the scorer and depth its validation recorded (rerank.json)
    "dual_softmax": "dual-softmax",
}


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


def build_report(result: EvalResult, model: str, annotations: Path, media_dir: Path, settings: dict) -> dict:
    best = "official" if "official" in result.metrics else "itc"  # the figure papers report
    return {
        "benchmark": result.benchmark.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "annotations": str(annotations),
        "media": str(media_dir),
        "settings": settings,
        "counts": result.counts,
        "headline": {k: result.metrics[best][f"t2v_{k}"] for k in ("R@1", "R@5", "R@10", "MdR")},
        "headline_scorer": best,
        "metrics": result.metrics,
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


def write_plots(result: EvalResult, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    written = []
    cutoffs = np.arange(1, 51)
    figure, axes = plt.subplots(figsize=(6, 4))
    for scorer, ranks in result.ranks.items():
        curve = [(ranks["t2v"] < k).mean() for k in cutoffs]
        axes.plot(cutoffs, curve, label=SCORER_LABELS.get(scorer, scorer))
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
        axes.hist(ranks["t2v"] + 1, bins=bins, alpha=0.5, label=SCORER_LABELS.get(scorer, scorer))
    axes.set(xscale="log", xlabel="rank of the right item (log scale)", ylabel="queries", title="rank histogram")
    axes.legend()
    figure.tight_layout()
    written.append(folder / "rank_histogram.png")
    figure.savefig(written[-1], dpi=110)
    plt.close(figure)
    return written


def save_report(report: dict, result: EvalResult, folder: Path) -> list[Path]:
    """Write report.json (last, atomically: a folder with report.json is complete), per_query.csv and plots."""
    folder.mkdir(parents=True, exist_ok=True)
    write_per_query(result, folder / "per_query.csv")
    files = [folder / "per_query.csv", *write_plots(result, folder)]
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
    for scorer, metrics in report["metrics"].items():
        cells = []
        for direction in ("t2v", "v2t"):
            cells += [f"{100 * metrics[f'{direction}_R@{k}']:.1f}" for k in (1, 5, 10)]
            cells.append(f"{metrics[f'{direction}_MdR']:.0f}")
        table.add_row(SCORER_LABELS.get(scorer, scorer), *cells, f"{100 * metrics['RSUM']:.1f}")
    console = Console()
    console.print(table)
    excluded = counts["items_missing"] + counts["items_failed"]
    if excluded:
        console.print(
            f"[yellow]{counts['items_missing']} items missing and {counts['items_failed']} unreadable were "
            f"excluded ({counts['texts_dropped']} texts with them); see failures in report.json[/yellow]"
        )
    speed = report["throughput"]
    if speed:
        console.print(", ".join(f"{name.replace('_per_s', '')}/s {value:.1f}" for name, value in speed.items()))
