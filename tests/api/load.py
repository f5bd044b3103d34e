"""A bounded load on a served API (tests/api/test_load.py, benchmarks/http_api.py): N clients, each a thread with its
own keep-alive connection, send text searches back to back for a fixed time and stop by themselves."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

import httpx

from tests.api.server import Server

QUERIES = (
    "a red circle moves to the left",
    "a small blue square on a grey background",
    "a green star grows",
    "a yellow triangle rises",
    "two shapes",
    "a purple circle shrinks",
)


def load(
    server: Server, clients: int, seconds: float, rerank_k: int | None = None, until: Callable[[], bool] | None = None
) -> dict:
    """Each client searches back to back until `seconds` pass (or, sooner, `until()` holds). Queries per second,
    p50/p99 latency (s), answers, errors (any answer but 200, or no answer), and the clip ids the answers held."""
    latencies: list[float] = []
    errors = [0]
    seen: set[int] = set()
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as http:
            sent = number
            while time.perf_counter() < stop_at and not (until is not None and until()):
                body = {"query": QUERIES[sent % len(QUERIES)], "k": 10, "rerank_k": rerank_k}
                started = time.perf_counter()
                try:
                    answer = http.post("/v1/search", json=body)
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                with lock:
                    if ok:
                        latencies.append(elapsed)
                        seen.update(row["clip_id"] for row in answer.json()["results"])
                    else:
                        errors[0] += 1
                sent += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "queries": len(latencies),
        "errors": errors[0],
        "qps": len(latencies) / wall,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "seen": seen,
    }
