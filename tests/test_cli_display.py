"""What `status`, `index` and `search` print for a person: no Python dicts, each path once, file names whole in an
80-column terminal (the folder gives way, shortened from the left)."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from indexer.cli import cli
from indexer.cli.display import media_counts, shorten_left, split_path

LONG_NAME = "IMG_20240713_181522_holiday_at_the_sea.png"  # 42 characters, as cameras and phones name them


def test_split_path_keeps_the_name_and_shortens_the_folder() -> None:
    path = "/home/me/Pictures/2024/summer/deep/inside/" + LONG_NAME
    assert split_path(path, ["/home/me/Pictures"], folder_width=12) == (LONG_NAME, "…deep/inside")
    assert split_path("/home/me/Pictures/x.jpg", ["/home/me/Pictures"]) == ("x.jpg", "Pictures")
    assert shorten_left("abcdef", 4) == "…def" and shorten_left("abc", 4) == "abc"
    assert media_counts({"video/indexed": 2, "image/indexed": 1, "unknown/failed": 1}) == (
        "1 image indexed, 2 videos indexed, 1 file failed"
    )


def test_status_and_search_read_as_text(tmp_path: Path, synthetic_media: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "Pictures" / "2024" / "summer holidays with the family"
    shutil.copytree(synthetic_media / "test" / "images", folder)
    first = sorted(folder.iterdir())[0]
    first.rename(folder / LONG_NAME)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    archive = ["--db", f"sqlite:///{tmp_path / 'catalog.sqlite'}", "--index-dir", str(tmp_path / "index")]
    runner = CliRunner(env={"COLUMNS": "80"})
    indexed = runner.invoke(cli, ["index", str(tmp_path / "Pictures"), "--model", str(tiny_model_dir), *archive])
    assert indexed.exit_code == 0, indexed.output
    assert "broken.jpg" in indexed.stdout

    status = runner.invoke(cli, ["status", *archive])
    assert status.exit_code == 0, status.output
    text = status.stdout
    assert "{" not in text and "}" not in text  # no Python dicts
    assert "4 images indexed, 1 file failed" in text and "1 file could not be indexed" in text
    assert text.count("broken.jpg") == 1 and str(folder) not in text.split("folders", 1)[1]
    assert "last run  #1 done" in text

    found = runner.invoke(cli, ["search", "a circle", "-k", "5", "--rerank-k", "0", *archive])
    assert found.exit_code == 0, found.output
    assert LONG_NAME in found.stdout  # whole, on one line, although the terminal is 80 columns wide
    assert all(len(line) <= 80 for line in found.stdout.splitlines())
    assert "…" in found.stdout or "Pictures/2024" in found.stdout  # its folder, under it
