"""A search from the shell, end to end: `mplug2-search search "..."` as a new process on the demo archive, wall clock
from start to exit. Most of it is imports, so the baseline, measured in the same run, is the floor any search must
pay: a Python process that imports torch and faiss and does nothing. Also listed: the heavy modules a search loaded
(open_clip, torchvision and torch._dynamo cost seconds and a text query needs none of them).

    python benchmarks/cli_search.py [--demo demo] [--runs 5]

The demo archive is built (`mplug2-search demo --no-ui`) when `--demo` holds none. Target: under 3 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUERIES = ("a red circle moves to the left", "a small blue square on a grey background", "a green star grows")
HEAVY = ("open_clip", "torchvision", "timm", "torch._dynamo", "decord", "matplotlib", "streamlit", "ray")

# Runs the CLI in-process after recording the start, then reports which heavy modules it imported.
PROBE = """
import sys, json
from indexer.cli import cli
try:
    cli(sys.argv[1:], prog_name="mplug2-search", standalone_mode=False)
finally:
    heavy = sorted({m for m in sys.modules for h in HEAVY if m == h or m.startswith(h + ".")} & set(HEAVY))
    print(json.dumps(heavy), file=sys.stderr)
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{result.stderr[-2000:]}")
    return elapsed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=REPO / "demo", help="A demo archive (built if missing).")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    demo = args.demo.resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPLUG2_SEARCH_")}
    env |= {"MPLUG2_SEARCH_HOME": str(demo), "PYTHONPATH": str(REPO)}
    if not (demo / "index" / "archive.json").is_file():
        print(f"building the demo archive in {demo} (once)")
        timed([sys.executable, "-m", "indexer", "demo", "--dir", str(demo), "--no-ui"], env)

    baseline, searches = [], []
    heavy: list[str] = []
    for run in range(args.runs):
        # interleaved, so that a change in the machine's load touches both alike
        elapsed, _ = timed([sys.executable, "-c", "import torch, faiss"], env)
        baseline.append(elapsed)
        query = QUERIES[run % len(QUERIES)]
        probe = PROBE.replace("HEAVY", repr(HEAVY))
        elapsed, result = timed([sys.executable, "-c", probe, "search", query, "-k", "10"], env)
        searches.append(elapsed)
        heavy = json.loads(result.stderr.strip().splitlines()[-1])
    search_s, floor_s = statistics.median(searches), statistics.median(baseline)
    print(f"cores available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")
    print(f"python -c 'import torch, faiss'   median {floor_s:6.2f} s  (baseline, {args.runs} runs)")
    print(
        f"mplug2-search search QUERY        median {search_s:6.2f} s  "
        f"(min {min(searches):.2f}, max {max(searches):.2f})"
    )
    print(f"ratio search / baseline           {search_s / floor_s:6.2f}")
    print(f"target < 3 s end to end: {'met' if search_s < 3 else 'NOT met'}")
    print(f"heavy modules a search imported: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
