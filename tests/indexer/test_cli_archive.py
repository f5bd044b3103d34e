"""The archive commands as a user runs them, in a subprocess: index (with a progress file), search --json, status,
verify (exit 1 with a report on a damaged archive), rebuild-index."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from indexer.settings import Settings
from tests.indexer.test_pipeline import REPO


def cli(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "indexer", *args, "--db", settings.db_url, "--index-dir", str(settings.index_dir)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def test_index_search_status_verify_rebuild(
    archive_dir: Path, settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> None:
    progress = tmp_path / "progress.json"
    indexed = cli(
        settings, "index", str(archive_dir), "--model", str(tiny_model_dir), "--json", "--progress-file", str(progress)
    )
    summary = json.loads(indexed.stdout)
    assert summary["status"] == "done" and summary["indexed"] == 17 and summary["failed"] == 4
    assert {"decode", "encode", "write", "total"} <= summary["timings"].keys()
    final = json.loads(progress.read_text())
    assert final["status"] == "done" and final["done"] == final["total"] == 21

    found = json.loads(cli(settings, "search", "a red circle", "--json", "-k", "5", "--rerank-k", "3").stdout)
    assert len(found["results"]) == 5 and sum(r["reranked"] for r in found["results"]) == 3
    assert all(Path(r["path"]).is_relative_to(archive_dir) for r in found["results"])
    images = json.loads(cli(settings, "search", "a shape", "--json", "--kind", "image").stdout)
    assert {r["kind"] for r in images["results"]} == {"image"} and len(images["results"]) == 4

    status = json.loads(cli(settings, "status", "--json").stdout)
    files = {(row["kind"], row["status"]): row["files"] for row in status["files"]}
    assert files[("video", "indexed")] == 13 and files[("image", "indexed")] == 4
    assert {Path(f["path"]).name for f in status["failed"]} == {
        "zero-bytes.mp4",
        "notes.mp4",
        "truncated-before-moov.mp4",
        "audio-only.mp4",
    }
    assert "ok: the database" in cli(settings, "verify").stdout

    (vectors,) = settings.index_dir.glob("vectors-*.faiss")  # the current generation of the saved index
    vectors.write_bytes(b"damaged")
    damaged = cli(settings, "verify", check=False)
    assert damaged.returncode == 1 and "problem:" in damaged.stderr and "rebuild-index" in damaged.stderr
    rebuilt = cli(settings, "rebuild-index", "--index-type", "HNSW32")
    assert f"index with {summary['clips']} vectors" in rebuilt.stdout
    assert "ok: the database" in cli(settings, "verify").stdout


def test_search_before_indexing_says_what_to_do(settings: Settings) -> None:
    result = cli(settings, "search", "anything", check=False)
    assert result.returncode == 2 and "mplug2-search index PATH" in result.stderr
    result = cli(settings, "search", check=False)
    assert result.returncode == 2 and "give a text query or --image FILE" in result.stderr
