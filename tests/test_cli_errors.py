"""User mistakes end as one short line and exit code 2; a bug keeps its traceback."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from indexer.cli import cli
from indexer.cli.errors import MAX_MESSAGE, Group


def _one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= MAX_MESSAGE + 10, result.output
    return lines[0]


def _status(tmp_path: Path, db: str) -> Result:
    return CliRunner().invoke(cli, ["status", "--db", db, "--index-dir", str(tmp_path / "index")])


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    line = _one_line_error(_status(tmp_path, f"sqlite:///{tmp_path / 'notes.txt'}"))
    assert "notes.txt is not a SQLite database" in line


def test_a_folder_as_database(tmp_path: Path) -> None:
    line = _one_line_error(_status(tmp_path, f"sqlite:///{tmp_path}"))
    assert "is a folder" in line and f"sqlite:///{tmp_path / 'catalog.sqlite'}" in line


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is not None, reason="psycopg2 is installed here")
def test_a_database_driver_that_is_not_installed(tmp_path: Path) -> None:
    line = _one_line_error(_status(tmp_path, "postgresql+psycopg2://me:secret@127.0.0.1/archive"))
    assert "psycopg2 is not installed" in line and "mplug2-search[postgres]" in line and "secret" not in line


def test_not_a_url(tmp_path: Path) -> None:
    assert "is not a database URL" in _one_line_error(_status(tmp_path, "my archive"))


def test_eval_on_an_image_says_so_briefly(tmp_path: Path) -> None:
    picture = tmp_path / "frame.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(picture)
    for benchmark in ("jsonl", "msrvtt-1ka", "msvd"):
        result = CliRunner().invoke(
            cli, ["eval", "--benchmark", benchmark, "--annotations", str(picture), "--media", str(tmp_path)]
        )
        line = _one_line_error(result)
        assert f"{picture}: not an annotation file of {benchmark}" in line


def test_empty_query(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["search", "   ", "--index-dir", str(tmp_path / "index")])
    assert result.exit_code == 2 and "the query is empty" in result.output


def test_a_folder_without_media(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "notes.txt").write_text("no media here")
    db = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    result = CliRunner().invoke(
        cli, ["index", str(folder), "--model", str(tiny_model_dir), "--db", db, "--index-dir", str(tmp_path / "i")]
    )
    assert f"no media found in {folder}" in _one_line_error(result)


def test_a_port_in_use_suggests_another(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = CliRunner().invoke(cli, ["ui", "--port", str(port), "--index-dir", str(tmp_path / "index")])
    line = _one_line_error(result)
    assert f"port {port} on 127.0.0.1 is in use" in line and "--port " in line


def test_a_bug_keeps_its_traceback() -> None:
    @click.group(cls=Group)
    def group() -> None:
        pass

    @group.command()
    def broken() -> None:
        raise KeyError("a bug")

    result = CliRunner().invoke(group, ["broken"])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)


def test_a_search_where_nothing_is_indexed_creates_nothing(tmp_path: Path) -> None:
    """A mistyped --index-dir or --db must not leave an empty archive (and a new database) behind."""
    home = tmp_path / "no-archive-here"
    archive = ["--db", f"sqlite:///{home / 'catalog.sqlite'}", "--index-dir", str(home / "index")]
    line = _one_line_error(CliRunner().invoke(cli, ["search", "a red circle", *archive]))
    assert f"nothing has been indexed into {home / 'index'}" in line and "mplug2-search index PATH" in line
    assert not home.exists()
