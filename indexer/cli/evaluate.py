"""`mplug2-search eval`: zero-shot retrieval on a standard benchmark's own annotation files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from indexer.cli import cli
from indexer.cli.errors import UserError
from indexer.cli.options import model_option, runtime_options
from indexer.evaluation.datasets import READERS


@cli.command("eval")
@click.option("--benchmark", required=True, type=click.Choice(sorted(READERS)), help="Annotation format to read.")
@click.option("--annotations", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--media", "media_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_option
@runtime_options
@click.option("--frames", type=int, help="Frames per video (default: the model's).")
@click.option(
    "--rerank-k",
    type=click.IntRange(min=0),
    help="Candidates re-ranked by ITM per query (default 128 video, 256 images, as officially; 0: no re-ranking). "
    "The model's own choice (its folder's rerank.json) is reported beside it.",
)
@click.option("--no-rerank", is_flag=True, help="ITC only (also what a model without a fusion encoder gives).")
@click.option("--dual-softmax", is_flag=True, help="Also report dual-softmax ITC scores (labelled separately).")
@click.option(
    "--composed-queries",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="When the annotations carry attributes (the synthetic format): queries composed of attribute combinations "
    "(half held in full by no item), graded by attribute overlap (nDCG@10, share of the best achievable at 1 and 5). "
    "0: none.",
)
@click.option("--limit", type=int, help="Evaluate only the first N items (a quick look).")
@click.option("--workers", type=int, default=2, show_default=True, help="Decode processes.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--device", help="cpu, cuda, cuda:1 (default: cuda when available).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder (default: reports/BENCHMARK-TIME in the home folder).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Feature cache, reused by later runs and resumed after an interruption (default: OUT/../.cache).",
)
def evaluate(
    benchmark: str,
    annotations: Path,
    media_dir: Path,
    model: str | None,
    runtime: str | None,
    precision: str | None,
    frames: int | None,
    rerank_k: int | None,
    no_rerank: bool,
    dual_softmax: bool,
    composed_queries: int,
    limit: int | None,
    workers: int,
    batch_size: int,
    device: str | None,
    out_dir: Path | None,
    cache_dir: Path | None,
) -> None:
    """Zero-shot text-video (or text-image) retrieval: R@1/5/10, MdR, MnR both ways, by ITC and re-ranked by ITM
    with each scorer: the official mPLUG-2 recipe (per kind), the engine's one-scale score, and the scorer and
    depth the model's validation chose (what search uses: the headline). Annotations with attributes add composed
    queries graded by attribute overlap. Missing or unreadable media are counted and left out."""
    from indexer.evaluation.datasets import load_benchmark
    from indexer.evaluation.report import build_report, print_table, save_report
    from indexer.evaluation.runner import EvalSettings
    from indexer.evaluation.runner import evaluate as run_evaluation
    from indexer.settings import RuntimeOptions, default_home, default_model_dir
    from indexer.store.runtime import serve
    from indexer.synthetic.compose import composed_queries as compose
    from mplug2.bundle import load_model_bundle

    try:
        data = load_benchmark(benchmark, annotations, media_dir)
    except ValueError as error:
        raise UserError(str(error)) from None
    if limit:
        data, _ = data.subset(list(range(min(limit, len(data.items)))))
    composed = compose(data.item_attributes(), data.kind, composed_queries)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = out_dir or default_home() / "reports" / f"{benchmark}-{stamp}"
    cache_dir = cache_dir or out_dir.parent / ".cache" / benchmark
    settings = EvalSettings(
        num_frames=frames,
        rerank_k=rerank_k,
        rerank=not no_rerank,
        dual_softmax=dual_softmax,
        batch_size=batch_size,
        workers=workers,
    )
    name = model or str(default_model_dir())
    try:
        bundle = load_model_bundle(name, device=device, with_fusion=not no_rerank)
        graphs = ("video", "image", "text") + (("itm",) if bundle.with_fusion else ())
        serve(bundle, RuntimeOptions(runtime or "auto", precision), None, default_home(), prepare=graphs)
        result = run_evaluation(bundle, data, settings, cache_dir, composed)
    except (FileNotFoundError, ValueError, RuntimeError) as error:  # RuntimeError: "nothing to evaluate"
        raise UserError(str(error)) from None
    report = build_report(
        result, bundle.name, annotations, media_dir, {**vars(settings), "runtime": [bundle.runtime, bundle.precision]}
    )
    files = save_report(report, result, out_dir)
    print_table(report)
    click.echo(f"report: {', '.join(str(f) for f in files)}")
