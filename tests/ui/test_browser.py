"""End to end in a real browser: `mplug2-search ui` on 127.0.0.1 over a sample archive indexed with the bundled
model, driven by Playwright in Debian's headless Chromium (the system binary, nothing downloaded). A caption of a
held-out video finds that video among the first results; opening it plays the clip from its start. Screenshots go
to test-artifacts/ for people to look at."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.settings import Settings, default_model_dir
from tests.indexer.test_pipeline import run_index

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

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def served(tmp_path: Path, synthetic_media: Path, settings: Settings) -> Iterator[tuple[str, list[dict]]]:
    """The app on a free port over 12 held-out videos and 4 images; yields (url, the videos' annotations)."""
    archive = tmp_path / "archive"
    shutil.copytree(synthetic_media / "test", archive)
    run_index(archive, settings, default_model_dir())
    annotations = synthetic_media / "annotations" / "test_videos.jsonl"
    rows = [json.loads(line) for line in annotations.read_text().splitlines()]
    port = free_port()
    command = [sys.executable, "-m", "indexer", "ui", "--db", settings.db_url, "--index-dir", str(settings.index_dir)]
    server = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "the app did not start in 60 s"
                time.sleep(0.3)
        yield url, [dict(row, video=row["video"].removeprefix("test/")) for row in rows]
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/setup.sh --test)")
def test_search_finds_the_video_and_plays_the_clip(served: tuple[str, list[dict]]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, rows = served
    wanted = next(row for row in rows if row["video"].endswith(".mp4"))
    name = Path(wanted["video"]).name
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url)
            page.get_by_label("What are you looking for?").fill(wanted["caption"])
            page.get_by_role("button", name="Search").click()
            expect(page.get_by_text("results for")).to_be_visible(timeout=60_000)
            cards = page.locator("[class*='st-key-result-']")
            expect(cards).to_have_count(16, timeout=60_000)  # 12 videos and 4 images, all drawn
            top_three = [cards.nth(i).inner_text() for i in range(3)]
            assert any(name in card for card in top_three), (name, top_three)
            page.screenshot(path=ARTIFACTS / "ui-search.png", full_page=True)

            cards.filter(has_text=name).get_by_role("button", name="Play clip").click()
            video = page.locator(".st-key-player video")
            expect(video).to_be_visible(timeout=30_000)
            state = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                state = video.evaluate(
                    "v => ({time: v.currentTime, paused: v.paused, ready: v.readyState, "
                    "error: v.error && v.error.code})"
                )
                if state["time"] > 0.2:
                    break
                time.sleep(0.25)
            assert state.get("error") is None and state["time"] > 0.2, state  # decoded and playing
            page.screenshot(path=ARTIFACTS / "ui-playing.png", full_page=True)

            page.get_by_role("radio", name="Library").click(force=True)
            expect(page.get_by_text("Searchable clips")).to_be_visible(timeout=30_000)
            expect(cards).to_have_count(0, timeout=30_000)  # the search page's cards are gone, not left stale
            page.wait_for_timeout(2_000)  # tables draw on a canvas after the page settles
            page.screenshot(path=ARTIFACTS / "ui-library.png", full_page=True)
        finally:
            browser.close()
