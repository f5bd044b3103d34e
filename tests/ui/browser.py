"""Helpers of the browser tests (tests/ui/test_browser.py): start `mplug2-search ui` on a free 127.0.0.1 port, open
pages in Debian's headless Chromium (the system binary, nothing downloaded) and record every address a page asks
for, and read the Library page's counts."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

from indexer.settings import Settings
from search_ui import jobs

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
VIEWPORT = {"width": 1400, "height": 1100}
SLOW = 120_000  # ms: a search or an index run on 2 busy cores


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(settings: Settings, log: Path, *options: str) -> Iterator[str]:
    """`mplug2-search ui` over `settings`' archive with `options`, on 127.0.0.1; yields its address. On the way out
    the server stops, and an index run it started (which outlives it by design) is waited for, then ended."""
    port = free_port()
    command = [sys.executable, "-m", "indexer", "ui", "--db", settings.db_url, "--index-dir", str(settings.index_dir)]
    env = {name: value for name, value in os.environ.items() if name != "MPLUG2_SEARCH_MEDIA_ROOTS"}
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [*command, "--port", str(port), *options],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert server.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, "the app did not start in 90 s"
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
            raise AssertionError(f"the app did not stop in 120 s after SIGTERM: {log.read_text()[-2000:]}") from None
        finally:
            _end_index_run(settings)


def _end_index_run(settings: Settings) -> None:
    job = jobs.current_job(settings)
    if job is None:
        return
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(job.pid)
        try:
            process.wait(timeout=120)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def open_page(browser, url: str) -> Iterator[tuple[object, list[str]]]:
    """A new page at `url`, and the list (filled as it goes) of every address the page requests, web sockets too."""
    page = browser.new_page(viewport=VIEWPORT)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("websocket", lambda socket: requested.append(socket.url))
    page.set_default_timeout(60_000)
    try:
        page.goto(url, timeout=SLOW, wait_until="domcontentloaded")
        yield page, requested
    finally:
        page.close()


def foreign(requested: list[str], url: str) -> list[str]:
    """The addresses in `requested` that are not the app's own `url` (http or ws) nor local (data:, blob:, about:)."""
    own = (url + "/", url.replace("http://", "ws://", 1) + "/")
    return [
        address
        for address in requested
        if not (address.startswith(own) or address.startswith(("data:", "blob:", "about:")))
    ]


def go_to(page, name: str) -> None:
    page.get_by_role("radio", name=name).click(force=True)  # the radio input is hidden behind its label


def metric(page, label: str):
    """The locator of the value of the Library page's metric `label` (e.g. "Files indexed")."""
    box = page.locator("[data-testid='stMetric']").filter(has_text=label)
    return box.locator("[data-testid='stMetricValue']")
