"""A bounded load on a served API (4 clients, for as long as an index run into the archive it serves lasts, at most
5 minutes) while that run commits files: every request is answered (0 errors), and the searches see the archive
grow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from indexer.settings import Settings
from tests.api.conftest import TOKEN
from tests.api.load import load
from tests.api.server import REPO, running
from tests.indexer.test_cli_archive import cli

CLIENTS = 4
MAX_SECONDS = 300.0


@pytest.mark.slow
def test_no_errors_under_load_while_an_index_run_commits(
    archive_dir: Path, settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> None:
    cli(settings, "index", str(archive_dir / "long"), "--model", str(tiny_model_dir))
    with running(settings, tmp_path / "serve.log", TOKEN) as server:
        status = httpx.get(f"{server.url}/v1/status", headers=server.headers(), timeout=60).json()
        before = status["clips_ready"]
        archive = ["--db", settings.db_url, "--index-dir", str(settings.index_dir)]
        with open(tmp_path / "index.log", "wb") as log:
            index_run = subprocess.Popen(
                [sys.executable, "-m", "indexer", "index", str(archive_dir / "clips"), *archive],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            result = load(server, CLIENTS, MAX_SECONDS, rerank_k=4, until=lambda: index_run.poll() is not None)
        finally:
            assert index_run.wait(timeout=600) == 0, (tmp_path / "index.log").read_text()[-2000:]
        after = httpx.get(f"{server.url}/v1/status", headers=server.headers(), timeout=60).json()["clips_ready"]
    assert result["errors"] == 0 and result["queries"] > 0
    assert after > before
    assert len(result["seen"]) > before, "searches found clips of the files the run added"
