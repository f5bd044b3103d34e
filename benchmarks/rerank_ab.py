"""Re-rank latency of two checkouts of this project, measured in turns in one run.

Two benchmark runs minutes apart differ by more than a small change costs on a shared 2-core machine (a 30 ms re-rank
read 30.5 ms in one run and 38.8 ms in the next, on code that does the same work). So this runs the two sides in
alternating processes: each opens its own archive with its own code (`PYTHONPATH` = its checkout), warms up, then
times the engine's re-rank stage over the same captions (k 10, rerank_k 32). The baseline is side A of the same run.

    python benchmarks/rerank_ab.py --a OLD_CHECKOUT OLD_ARCHIVE --b NEW_CHECKOUT NEW_ARCHIVE \
        --captions DATA/annotations/test_videos.jsonl [--rounds 3] [--queries 40]

An archive is a folder holding catalog.sqlite and index/ (as benchmarks/search.py and benchmarks/index.py leave them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

# Runs inside each side's checkout: prints the median re-rank seconds per query.
PROBE = """
import json, sys
from pathlib import Path
import numpy as np
from indexer.search.engine import SearchEngine
from indexer.settings import Settings, sqlite_url

archive, captions, queries = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
database = sqlite_url(archive / "catalog.sqlite")
settings = Settings(home=archive, db_url=database, index_dir=archive / "index", model=None)
engine = SearchEngine.open(settings)
texts = [json.loads(line)["caption"] for line in captions.read_text().splitlines()][:queries]
texts = [t if isinstance(t, str) else t[0] for t in texts]
for text in texts[:5]:
    engine.search(text, k=10, rerank_k=32)
seconds = [engine.search(text, k=10, rerank_k=32).timings["rerank"] for _ in range(3) for text in texts]
print(float(np.median(seconds)))
"""


def median_rerank(checkout: Path, archive: Path, captions: Path, queries: int) -> float:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(archive), str(captions), str(queries)],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"{checkout} on {archive} failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", nargs=2, type=Path, required=True, metavar=("CHECKOUT", "ARCHIVE"), help="baseline")
    parser.add_argument("--b", nargs=2, type=Path, required=True, metavar=("CHECKOUT", "ARCHIVE"))
    parser.add_argument("--captions", type=Path, required=True, help="a JSONL annotation file with a caption field")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args()
    sides = {"A": args.a, "B": args.b}
    medians: dict[str, list[float]] = {"A": [], "B": []}
    for round_number in range(1, args.rounds + 1):
        for name, (checkout, archive) in sides.items():
            medians[name].append(median_rerank(checkout.resolve(), archive.resolve(), args.captions, args.queries))
        print(f"round {round_number}: A {medians['A'][-1] * 1000:6.2f} ms   B {medians['B'][-1] * 1000:6.2f} ms")
    a, b = statistics.median(medians["A"]), statistics.median(medians["B"])
    print(f"re-rank p50, median of {args.rounds} rounds: A {a * 1000:.2f} ms, B {b * 1000:.2f} ms, B / A {b / a:.2f}")


if __name__ == "__main__":
    main()
