"""The HTTP API under concurrent load: `mplug2-search serve` on the demo archive (a real server on 127.0.0.1), and
N clients that each send text searches back to back for a fixed time. For 1 and for 16 clients: queries per second,
p50 and p99 latency, errors, and the mean number of searches the server answered together (its batch-size
histogram, from /metrics). The baseline is one client, measured in the same run against the same server; the
target is 16 clients at 1.5x its queries per second or more.

    python benchmarks/http_api.py [--demo demo] [--seconds 20] [--clients 1 16] [--rerank-k N]

Re-ranking follows the model's choice (none for the bundled model) unless `--rerank-k` sets a depth: with it both
batched stages run, the text encoder and the ITM head (whose cost grows with the pairs, batched or not). Clients are
threads of this process and share the machine's cores with the server: on a small machine the figure is what the
server gives with its load generator beside it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on the path, and this file's name would hide the standard library's
# `http` package from httpx: drop the folder (the repository root stands in for it below).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402

import httpx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from indexer.settings import load_settings  # noqa: E402
from tests.api.load import load  # noqa: E402
from tests.api.server import Server, running  # noqa: E402

TOKEN = "benchmark-token-0123456789"


def batch_counts(server: Server) -> tuple[float, float]:
    """(searches, batches) the server has answered so far, from its batch-size histogram."""
    text = httpx.get(f"{server.url}/metrics", headers=server.headers(), timeout=60).text
    values = {}
    for line in text.splitlines():
        if line.startswith(("mplug2_search_batch_size_sum", "mplug2_search_batch_size_count")):
            name, value = line.split()
            values[name] = float(value)
    return values["mplug2_search_batch_size_sum"], values["mplug2_search_batch_size_count"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=REPO / "demo", help="A demo archive (built if missing).")
    parser.add_argument("--seconds", type=float, default=20.0, help="How long each load runs.")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rerank-k", type=int, help="ITM depth (default: the model's choice)")
    args = parser.parse_args()
    demo = args.demo.resolve()
    if not (demo / "index" / "archive.json").is_file():
        import subprocess

        print(f"building the demo archive in {demo} (once)")
        subprocess.run([sys.executable, "-m", "indexer", "demo", "--dir", str(demo), "--no-ui"], cwd=REPO, check=True)
    os.environ["MPLUG2_SEARCH_HOME"] = str(demo)
    settings = load_settings()
    log = demo / "http-benchmark.log"
    with running(settings, log, TOKEN) as server:
        load(server, 4, min(5.0, args.seconds), args.rerank_k)  # warm-up: the first calls of each size are slow
        rows = []
        for clients in args.clients:
            before = batch_counts(server)
            row = load(server, clients, args.seconds, args.rerank_k)
            after = batch_counts(server)
            row["batch"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
            rows.append(row)
    print(
        f"cores available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}; "
        f"{args.seconds:g} s per load, rerank_k {args.rerank_k}, demo archive {demo}"
    )
    baseline = rows[0]["qps"]
    for row in rows:
        print(
            f"{row['clients']:3d} clients: {row['qps']:7.2f} queries/s ({row['qps'] / baseline:4.2f}x the first row), "
            f"p50 {row['p50'] * 1000:7.1f} ms, p99 {row['p99'] * 1000:7.1f} ms, {row['queries']} answered, "
            f"{row['errors']} errors, {row['batch']:.1f} searches per batch"
        )


if __name__ == "__main__":
    main()
