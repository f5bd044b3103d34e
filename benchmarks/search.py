"""Search latency and ANN recall.

1. A real archive: the synthetic benchmark's held-out test split (videos and images), indexed with the bundled model.
   End-to-end `SearchEngine.search` latency over its test captions, split into its stages.
2. Scale: N clip vectors (10k, 100k) made from the real clip vectors by jitter (each a real vector plus Gaussian
   noise, renormalised, so neighbourhoods look like real ones), in the project's VectorIndex and in a bare FAISS
   IndexFlatIP (the baseline, same vectors, same run), with N clip rows in a real SQLite catalog for the metadata
   fetch. Per query: text encoding, vector search, metadata fetch, and ITM re-rank of 32 real candidates (its cost
   does not depend on N). p50 / p95 of each.
3. Recall@10 of each ANN factory against exact search, with the real text-query vectors against the N clip vectors.

    python benchmarks/search.py [--sizes 10000 100000] [--queries 200] [--work bench-out/search]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path

import faiss
import numpy as np
from sqlalchemy import insert

REPO = Path(__file__).resolve().parents[1]


def percentiles(samples: list[float]) -> str:
    ms = np.asarray(samples) * 1000
    return f"p50 {np.percentile(ms, 50):7.2f} ms  p95 {np.percentile(ms, 95):7.2f} ms"


def real_archive(work: Path, data: Path):
    """Index the test split once (reused by later runs) and open a search engine over it."""
    from indexer.indexing.pipeline import IndexOptions, index_paths
    from indexer.search.engine import SearchEngine
    from indexer.settings import Settings, default_model_dir, sqlite_url
    from mplug2.bundle import load_model_bundle

    settings = Settings(work, sqlite_url(work / "catalog.sqlite"), work / "index", None)
    bundle = load_model_bundle(default_model_dir())
    if not (work / "indexed").exists():
        summary = index_paths([data / "test"], settings, bundle, IndexOptions(progress=True))
        print(f"indexed {summary.indexed} files, {summary.clips} clips in {summary.timings['total']:.1f} s")
        (work / "indexed").touch()
    return SearchEngine(settings, bundle), bundle


def scaled_catalog(path: Path, size: int):
    """A SQLite catalog with `size` ready clips (10 per media row), ids 1..size."""
    from indexer.store.db.catalog import Catalog
    from indexer.store.db.models import Clip, Media

    path.unlink(missing_ok=True)
    catalog = Catalog(f"sqlite:///{path}")
    now = datetime.now()
    media = [
        {
            "id": m + 1,
            "path": f"/archive/m{m:07d}.mp4",
            "root": "/archive",
            "size": 1000,
            "mtime": 0.0,
            "kind": "video",
            "duration": 100.0,
            "status": "indexed",
            "updated_at": now,
        }
        for m in range(size // 10)
    ]
    clips = [
        {
            "id": c + 1,
            "media_id": c // 10 + 1,
            "start": float(c % 10) * 10,
            "end": float(c % 10) * 10 + 10,
            "status": "ready",
        }
        for c in range(size)
    ]
    with catalog.engine.begin() as connection:
        connection.execute(insert(Media), media)
        connection.execute(insert(Clip), clips)
    return catalog


def jittered(real: np.ndarray, size: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    base = real[rng.integers(len(real), size=size)]
    noisy = base + rng.normal(scale=sigma / np.sqrt(real.shape[1]), size=base.shape).astype(np.float32)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def recall_at_10(exact_ids: np.ndarray, ann_ids: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_ids, ann_ids, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path, default=REPO / "bench-out" / "search")
    parser.add_argument("--data", type=Path, default=REPO / "bench-out" / "synthetic")
    parser.add_argument("--sigma", type=float, default=0.5, help="jitter around the real clip vectors")
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    if not (args.data / "manifest.json").exists():
        from indexer.synthetic.generate import generate

        generate(args.data, seed=5, train_videos=0, train_images=0, test_videos=300, test_images=100)
    args.work.mkdir(parents=True, exist_ok=True)
    engine, bundle = real_archive(args.work / "real", args.data)
    annotations = (args.data / "annotations" / "test_videos.jsonl").read_text().splitlines()
    captions = [json.loads(line)["caption"] for line in annotations]
    queries = (captions * (args.queries // len(captions) + 1))[: args.queries]

    clips = engine.archive.index.ntotal
    print(f"\n== end to end on the real archive ({clips} clips), rerank_k 32, {len(queries)} queries")
    stages: dict[str, list[float]] = {}
    for query in queries:
        response = engine.search(query, k=10, rerank_k=32)
        for stage, seconds in response.timings.items():
            stages.setdefault(stage, []).append(seconds)
    for stage in ("refresh", "encode_query", "vector_search", "metadata", "rerank", "total"):
        print(f"  {stage:14} {percentiles(stages[stage])}")

    _, real_vectors = engine.archive.store.itc()
    real_vectors = real_vectors.astype(np.float32)
    text_vectors = np.concatenate(
        [bundle.encode_texts(queries[i : i + 64], "video").feat.numpy() for i in range(0, len(queries), 64)]
    ).astype(np.float32)
    candidate_records = engine.search(queries[0], k=32, rerank_k=0).results
    records = engine.archive.clips([r.clip_id for r in candidate_records])
    text = bundle.encode_texts([queries[0]], "video")
    rng = np.random.default_rng(0)
    from indexer.store.vectors import VectorIndex

    for size in args.sizes:
        print(f"\n== {size:,} clips (jittered real vectors, sigma {args.sigma})")
        vectors = jittered(real_vectors, size, args.sigma, rng)
        ids = np.arange(1, size + 1, dtype=np.int64)
        index = VectorIndex(vectors.shape[1], "Flat", use_gpu=False)
        index.add(ids, vectors)
        raw = faiss.IndexFlatIP(vectors.shape[1])
        raw.add(vectors)
        catalog = scaled_catalog(args.work / f"catalog-{size}.sqlite", size)
        stages = ("fresh_ids", "fresh_sig", "text", "vector", "raw_faiss", "metadata", "rerank", "sum")
        timing: dict[str, list[float]] = {k: [] for k in stages}
        for number, query in enumerate(queries):
            # Is the index still current? Fetching every ready id (the engine's check before issue 14) against
            # the catalog's generation counter it reads now.
            started = time.perf_counter()
            catalog.ready_clip_ids()
            timing["fresh_ids"].append(time.perf_counter() - started)
            started = time.perf_counter()
            catalog.generation()
            timing["fresh_sig"].append(time.perf_counter() - started)
            started = time.perf_counter()
            vector = bundle.encode_texts([query], "video").feat.numpy().astype(np.float32)
            timing["text"].append(time.perf_counter() - started)
            started = time.perf_counter()
            hits = index.search(vector, 32)
            timing["vector"].append(time.perf_counter() - started)
            started = time.perf_counter()
            raw.search(vector, 32)
            timing["raw_faiss"].append(time.perf_counter() - started)
            started = time.perf_counter()
            catalog.clips(hits.ids[0])
            timing["metadata"].append(time.perf_counter() - started)
            if number < 50:  # the re-rank does not depend on N; 50 samples are plenty
                started = time.perf_counter()
                engine._itm(text, records)
                timing["rerank"].append(time.perf_counter() - started)
            timing["sum"].append(
                timing["text"][-1] + timing["vector"][-1] + timing["metadata"][-1] + np.median(timing["rerank"])
            )
        for stage, samples in timing.items():
            print(f"  {stage:10} {percentiles(samples)}")
        ratio = np.median(timing["vector"]) / np.median(timing["raw_faiss"])
        print(f"  VectorIndex / bare FAISS (median): {ratio:.2f}x")
        fresh = np.median(timing["fresh_sig"]) / np.median(timing["fresh_ids"])
        print(f"  freshness check: generation lookup / fetching every ready id (median): {fresh:.3f}x")
        exact = raw.search(text_vectors, 10)[1] + 1
        # 4 sqrt(N) lists as FAISS suggests, but no more than the vectors can train (39 per centroid): otherwise
        # the index would stay exact and its recall say nothing.
        nlist = max(1, min(int(4 * np.sqrt(size)), size // 39))
        for factory in ("HNSW32", f"IVF{nlist},Flat", f"IVF{nlist},PQ32"):
            ann = VectorIndex(vectors.shape[1], factory, use_gpu=False)
            started = time.perf_counter()
            ann.add(ids, vectors)
            build = time.perf_counter() - started
            started = time.perf_counter()
            found = ann.search(text_vectors, 10).ids
            per_query = (time.perf_counter() - started) / len(text_vectors)
            serving = "" if ann.effective_factory == factory else f"  (untrained: {ann.effective_factory} served)"
            print(
                f"  {factory:16} recall@10 {recall_at_10(exact, found):.3f}  build {build:6.1f} s  "
                f"{per_query * 1000:.3f} ms/query (batched){serving}"
            )
        catalog.close()
    engine.close()


if __name__ == "__main__":
    main()
