"""A search from the shell, end to end: `mplug2-search search "..."` as a new process on the demo archive, wall clock
from start to exit, three ways:

- in-process (`--keep-warm 0`): the command imports torch and FAISS and loads the model itself;
- first search (no service running): the command starts the archive's search service and asks it;
- warm (the service runs, as after any earlier search): the command only sends the query and prints the answer.

The baseline, measured in the same run, is the floor that an in-process search must pay: a Python process that
imports torch and faiss and does nothing. Also listed: the heavy modules each kind of search loaded.

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
HEAVY = ("torch", "faiss", "sqlalchemy", "open_clip", "torchvision", "timm", "decord", "streamlit", "ray")

# Runs the CLI in-process after recording the start, then reports which heavy modules it imported.
PROBE = """
import sys, json
from indexer.cli import cli
try:
    cli(sys.argv[1:], prog_name="mplug2-search", standalone_mode=False)
finally:
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
    print(json.dumps(heavy), file=sys.stderr)
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{result.stderr[-2000:]}")
    return elapsed, result


def search(query: str, keep_warm: float, env: dict[str, str]) -> tuple[float, list[str]]:
    """Seconds, and the heavy modules the command imported."""
    probe = PROBE.replace("HEAVY", repr(HEAVY))
    command = [sys.executable, "-c", probe, "search", query, "-k", "10", "--keep-warm", str(keep_warm)]
    elapsed, result = timed(command, env)
    return elapsed, json.loads(result.stderr.strip().splitlines()[-1])


def stop_service(env: dict[str, str]) -> None:
    timed([sys.executable, "-m", "indexer", "service", "--stop"], env)


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

    stop_service(env)
    floor, in_process, first, warm = [], [], [], []
    heavy: dict[str, list[str]] = {}
    for run in range(args.runs):
        # interleaved, so that a change in the machine's load touches all alike
        query = QUERIES[run % len(QUERIES)]
        floor.append(timed([sys.executable, "-c", "import torch, faiss"], env)[0])
        elapsed, heavy["in-process"] = search(query, 0, env)
        in_process.append(elapsed)
        elapsed, heavy["first"] = search(query, 5, env)
        first.append(elapsed)
        elapsed, heavy["warm"] = search(QUERIES[(run + 1) % len(QUERIES)], 5, env)
        warm.append(elapsed)
        stop_service(env)

    floor_s = statistics.median(floor)
    print(f"cores available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}, {args.runs} runs")
    baseline = "python -c 'import torch, faiss'"
    print(f"{baseline:38} median {floor_s:6.2f} s  (baseline)")
    for label, times, key in (
        ("search, in-process (--keep-warm 0)", in_process, "in-process"),
        ("search, first (starts the service)", first, "first"),
        ("search, warm (the service answers)", warm, "warm"),
    ):
        median = statistics.median(times)
        print(
            f"{label:38} median {median:6.2f} s  (min {min(times):.2f}, max {max(times):.2f})  "
            f"{median / floor_s:5.2f}x baseline; imported: {', '.join(heavy[key]) or 'none of them'}"
        )
    warm_s = statistics.median(warm)
    print(f"target < 3 s end to end (a search after the first): {'met' if warm_s < 3 else 'NOT met'} ({warm_s:.2f} s)")


if __name__ == "__main__":
    main()
