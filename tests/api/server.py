"""A real `mplug2-search serve` process on a free 127.0.0.1 port for the API tests and benchmarks/http_api.py: started
with the archive's options and a token, ready once /v1/health answers, stopped (SIGTERM, then SIGKILL) on the way
out."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from indexer.settings import Settings

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Server:
    url: str
    token: str | None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command(settings: Settings, *options: str) -> list[str]:
    archive = ["--db", settings.db_url, "--index-dir", str(settings.index_dir)]
    return [sys.executable, "-m", "indexer", "serve", *archive, *options]


@contextlib.contextmanager
def running(settings: Settings, log: Path, token: str | None, *options: str) -> Iterator[Server]:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name != "MPLUG2_SEARCH_TOKEN"}
    if token is not None:
        env["MPLUG2_SEARCH_TOKEN"] = token
    with open(log, "wb") as output:
        process = subprocess.Popen(
            serve_command(settings, "--port", str(port), *options),
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield Server(url, token)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/v1/health", timeout=5) as answer:
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"serve did not answer within {START_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}")
