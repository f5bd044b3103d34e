"""Indexing throughput against decoding alone, and what each re-rank feature mode costs and gives.

1. Decode only: probe, segment and decode every file of a synthetic archive (held-out videos and images, plus
   long multi-scene videos) through the same worker pool, frame count and size as indexing; no model, no writes.
2. Index: `index_paths` on the same files into a fresh archive, with the bundled model. Clips/s and the ratio of
   indexing time to decode-only time (1.0 would mean the model and the writes hide entirely behind decoding).
3. Feature modes full / pooled / none: bytes per clip in the feature store, re-rank latency per query, and
   text-to-video R@1 of the engine (rerank_k 32) with each, over the archive's own captions.

With `--ray`, instead of 3: the same files indexed locally and on Ray clusters started on this machine
(`ray.cluster_utils.Cluster`, all on 127.0.0.1), side by side in one run: Ray's overhead against local indexing with
the same CPUs (a one-node cluster), and throughput with one and two worker nodes (ratios to local and to each other).

With `--model` (a model folder, or a config name such as mplug2-base: a folder with random weights is written once
under --work) and `--runtimes`, instead: whole index runs of the same files with torch fp32, OpenVINO fp32 and
OpenVINO int8, alternating over --rounds (so the machine's load falls on each alike), clips/s and ratios to torch.

    python benchmarks/index.py [--videos 200] [--images 50] [--work bench-out/index] [--ray]
    python benchmarks/index.py --model mplug2-base --runtimes --videos 12 --images 0 --long 0 [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def decode_only(folder: Path, bundle, workers: int) -> tuple[float, int]:
    from indexer.indexing.pipeline import walk_media
    from indexer.media.probe import MediaKind, probe
    from indexer.media.request import model_request
    from indexer.media.segment import SegmentPolicy, policy_windows
    from indexer.media.workers import DecodePool

    started = time.perf_counter()

    def requests():
        for path in walk_media(folder, set()):
            info = probe(path)
            image = info.kind is MediaKind.IMAGE
            windows = [] if image else policy_windows(info.duration, SegmentPolicy())
            spans = [(0.0, None)] if image else [(s.start, s.end) for s in windows]
            kind = "image" if image else "video"
            yield model_request(bundle.config, str(path), kind, tuple(spans), thumbnail_side=320, info=info)

    clips = 0
    with DecodePool(workers) as pool:
        for _, outcome in pool.imap(requests()):
            clips += len(getattr(outcome, "spans", ()))
    return time.perf_counter() - started, clips


def r_at_1(engine, rows: list[dict], media: Path) -> tuple[float, float]:
    """Text-to-file R@1 over the captions, and the median re-rank seconds per query."""
    hits, rerank = [], []
    for row in rows:
        response = engine.search(row["caption"], k=1, rerank_k=32)
        hits.append(bool(response.results) and Path(response.results[0].path) == (media / row["video"]).resolve())
        rerank.append(response.timings.get("rerank", 0.0))
    return float(np.mean(hits)), float(np.median(rerank))


def ray_comparison(data: Path, bundle, workers: int, work: Path) -> None:
    """Local, then Ray on one node with the same CPUs, then Ray with 1 and 2 worker nodes: clips/s and ratios."""
    import os

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every node on 127.0.0.1 (MACHINE_NOTES.md)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    from ray.cluster_utils import Cluster

    from indexer.indexing.pipeline import IndexOptions, index_paths
    from indexer.indexing.ray_index import RayOptions, index_on_ray
    from indexer.settings import Settings, sqlite_url

    cpus = workers + 1  # local indexing: `workers` decode processes and the encoder in the main process
    options = IndexOptions(workers=workers, progress=False)
    # (name, head CPUs, worker nodes, CPUs per worker node, encoder actors); None: local
    setups = [
        ("local", None, 0, 0, 0),
        (f"ray, one node of {cpus} CPUs", cpus, 0, 0, 1),
        (f"ray, head + 1 worker node of {cpus} CPUs", 0, 1, cpus, 1),
        (f"ray, head + 2 worker nodes of {cpus} CPUs", 0, 2, cpus, 2),
    ]
    rates: dict[str, float] = {}
    for name, head_cpus, nodes, node_cpus, actors in setups:
        state = work / f"archive-{name.split(',')[0]}-{nodes}"
        shutil.rmtree(state, ignore_errors=True)
        settings = Settings(state, sqlite_url(state / "catalog.sqlite"), state / "index", None)
        if head_cpus is None:
            summary = index_paths([data], settings, bundle, options)
        else:
            cluster = Cluster()
            try:  # the head inside the try too: a node that times out starting (a loaded machine) is shut down
                cluster.add_node(num_cpus=head_cpus)
                for _ in range(nodes):
                    cluster.add_node(num_cpus=node_cpus)
                cluster.wait_for_nodes()
                summary = index_on_ray([data], settings, bundle, options, RayOptions(cluster.address, actors=actors))
            finally:
                cluster.shutdown()
        seconds = summary.timings["total"]
        rates[name] = summary.clips / seconds
        stages = ", ".join(f"{k} {v:.1f}" for k, v in summary.timings.items())
        print(f"{name:40}: {summary.clips} clips in {seconds:6.1f} s = {rates[name]:5.2f} clips/s; stages: {stages}")
        if hasattr(summary, "nodes"):
            for node, stats in sorted(summary.nodes.items()):
                print(f"{'':42}{node}: {vars(stats)}")
    names = list(rates)
    local, one_node, one_worker, two_workers = (rates[n] for n in names)
    print(f"Ray on one node vs local, same CPUs: {local / one_node:.2f}x the time ({(local / one_node - 1):+.0%})")
    print(f"2 worker nodes vs 1: {two_workers / one_worker:.2f}x the throughput; vs local {two_workers / local:.2f}x")


def model_folder(name: str, work: Path) -> Path:
    """`name` if it is a model folder, else one written for the config `name` with random weights (once)."""
    from mplug2 import create_model, save_model_folder
    from mplug2.folder import is_model_folder
    from mplug2.pretrained import BERT_VOCAB

    if is_model_folder(name):
        return Path(name)
    folder = work / f"model-{name}"
    if not is_model_folder(folder):
        save_model_folder(create_model(name), BERT_VOCAB, folder)
    return folder


def runtime_comparison(data: Path, model: Path, workers: int, work: Path, rounds: int) -> None:
    """Whole index runs of `data` per runtime, alternating; exports are made (and timed) before the runs."""
    import dataclasses
    import os
    import statistics

    from indexer.indexing.pipeline import IndexOptions, index_paths
    from indexer.settings import RuntimeOptions, Settings, sqlite_url
    from indexer.store.runtime import serve
    from mplug2.bundle import load_model_bundle

    variants = [("torch", "fp32"), ("openvino", "fp32"), ("openvino", "int8")]
    home = work / "home"  # the export cache is the home's, shared by every run below
    bundles = {}
    for runtime, precision in variants:
        bundle = load_model_bundle(model, with_fusion=False)
        started = time.perf_counter()
        fallback = serve(bundle, RuntimeOptions(runtime, precision), None, home, prepare=("video", "image"))
        if fallback:
            print(f"{runtime} {precision}: not measured ({fallback})")
            continue
        print(f"{runtime} {precision}: ready in {time.perf_counter() - started:.0f} s (export once per weights)")
        bundles[(runtime, precision)] = bundle
    rates: dict = {variant: [] for variant in bundles}
    load = [os.getloadavg()[0]]
    for round_index in range(rounds):
        for (runtime, precision), bundle in bundles.items():
            state = work / f"archive-{runtime}-{precision}"
            shutil.rmtree(state, ignore_errors=True)
            settings = dataclasses.replace(
                Settings(home, sqlite_url(state / "catalog.sqlite"), state / "index", None),
                runtime=RuntimeOptions(runtime, precision),
            )
            options = IndexOptions(workers=workers, progress=False, runtime=settings.runtime)
            summary = index_paths([data], settings, bundle, options)
            seconds = summary.timings["total"]
            rates[(runtime, precision)].append(summary.clips / seconds)
            print(f"round {round_index + 1} {runtime} {precision}: {summary.clips} clips in {seconds:.1f} s")
            load.append(os.getloadavg()[0])
    torch_rate = statistics.median(rates[variants[0]])
    print(f"{model.name}: whole index runs, median of {rounds}; load average {min(load):.1f}-{max(load):.1f} (2 cores)")
    for (runtime, precision), values in rates.items():
        rate = statistics.median(values)
        print(f"  {runtime:8} {precision}: {rate:6.3f} clips/s  {rate / torch_rate:5.2f}x torch fp32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--long", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--queries",
        type=int,
        default=50,
        help="captions searched per mode (mode none decodes each query's 32 candidates again: about 4 s a query)",
    )
    parser.add_argument("--work", type=Path, default=REPO / "bench-out" / "index")
    parser.add_argument("--ray", action="store_true", help="local vs Ray: overhead on one node, 1 and 2 worker nodes")
    parser.add_argument("--model", help="a model folder or config name (with --runtimes)")
    parser.add_argument("--runtimes", action="store_true", help="torch fp32 vs OpenVINO fp32 vs int8 index runs")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from indexer.indexing.pipeline import IndexOptions, index_paths
    from indexer.search.engine import SearchEngine
    from indexer.settings import Settings, default_model_dir, sqlite_url
    from indexer.synthetic.generate import generate
    from mplug2.bundle import load_model_bundle

    data = args.work / "media"
    if not (data / "manifest.json").exists():
        generate(
            data,
            seed=3,
            train_videos=0,
            train_images=0,
            test_videos=args.videos,
            test_images=args.images,
            long_videos=args.long,
        )
    if args.runtimes:
        model = model_folder(args.model or str(default_model_dir()), args.work)
        runtime_comparison(data, model, args.workers, args.work, args.rounds)
        return
    bundle = load_model_bundle(default_model_dir())
    if args.ray:
        ray_comparison(data, bundle, args.workers, args.work)
        return
    decode_s, decode_clips = decode_only(data, bundle, args.workers)
    print(f"decode only: {decode_clips} clips in {decode_s:.1f} s ({decode_clips / decode_s:.1f} clips/s)")

    rows = [json.loads(line) for line in (data / "annotations" / "test_videos.jsonl").read_text().splitlines()]
    rows = rows[: args.queries]
    baseline = None
    for mode in ("full", "pooled", "none"):
        state = args.work / f"archive-{mode}"
        shutil.rmtree(state, ignore_errors=True)
        settings = Settings(state, sqlite_url(state / "catalog.sqlite"), state / "index", None)
        options = IndexOptions(feature_mode=mode, workers=args.workers, progress=False)
        summary = index_paths([data], settings, bundle, options)
        seconds = summary.timings["total"]
        if baseline is None:
            baseline = seconds
            stages = ", ".join(f"{k} {v:.1f}" for k, v in summary.timings.items())
            print(
                f"index ({mode}): {summary.clips} clips in {seconds:.1f} s ({summary.clips / seconds:.1f} clips/s), "
                f"{seconds / decode_s:.2f}x the decode-only time; stages (s): {stages}"
            )
        engine = SearchEngine(settings, bundle)
        store = engine.stats().features
        recall, rerank_s = r_at_1(engine, rows, data)
        engine.close()
        print(
            f"mode {mode:6}: {store.bytes_per_clip / 1024:7.1f} KB/clip, index time {seconds / baseline:.2f}x full, "
            f"re-rank {rerank_s * 1000:6.1f} ms/query (median), t2v R@1 {recall:.3f} ({len(rows)} captions)"
        )


if __name__ == "__main__":
    main()
