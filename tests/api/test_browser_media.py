"""A browser's <video> plays a search result from the clip's start through the signed media URL alone, with the
server's token set (the element cannot send it): Chromium (Debian's, driven by Playwright) seeks with HTTP Range
requests, answered 206 with Content-Range."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.api.server import Server
from tests.ui.browser import CHROMIUM, CHROMIUM_FLAGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/setup.sh --test)"
    ),
]

PLAYED_S = 0.5  # how far past the clip's start the video must play


def test_a_video_element_plays_the_clip_from_its_start_through_the_signed_url(api: Server, media_root: Path) -> None:
    from playwright.sync_api import sync_playwright

    body = {"query": "a shape", "k": 20, "filters": {"path_prefix": str(media_root / "long")}}
    answer = httpx.post(f"{api.url}/v1/search", json=body, headers=api.headers(), timeout=120)
    clip = next(row for row in answer.json()["results"] if row["start"] > 1)  # a clip inside the file, not at 0
    assert httpx.get(clip["media_url"].split("?")[0], timeout=60).status_code == 401  # the token is set
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            media = []
            page.on("response", lambda response: media.append(response) if "/v1/media/" in response.url else None)
            page.set_content(f'<video id="clip" muted preload="auto" src="{clip["media_url"]}#t={clip["start"]}">')
            page.wait_for_function("document.getElementById('clip').readyState >= 1", timeout=60_000)
            page.evaluate("document.getElementById('clip').play()")
            page.wait_for_function(
                f"document.getElementById('clip').currentTime > {clip['start'] + PLAYED_S}", timeout=60_000
            )
            state = page.evaluate(
                "(() => { const v = document.getElementById('clip');"
                " return {paused: v.paused, error: v.error && v.error.code, start: v.played.start(0)}; })()"
            )
        finally:
            browser.close()
    assert state["error"] is None and not state["paused"]
    assert state["start"] == pytest.approx(clip["start"], abs=0.5)  # it played from the clip's start, not from 0
    assert any(response.status == 206 for response in media), [response.status for response in media]
    assert all(response.status in (200, 206) for response in media)
    ranged = next(response for response in media if response.status == 206)
    assert ranged.headers["content-range"].startswith("bytes ")
