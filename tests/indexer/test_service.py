"""The resident search service as a user meets it, every step a real `mplug2-search` process: the first search
starts the service, the next ones are answered by it with the same results as a search in-process and without
importing torch, FAISS or SQLAlchemy; it follows an index run, answers a user's mistake with one line and stays up,
is replaced when killed or when the archive is, ends when idle, and stops when asked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.search import service
from indexer.settings import Settings, load_settings
from tests.indexer.test_cli_archive import cli
from tests.indexer.test_pipeline import REPO

HEAVY = ("torch", "faiss", "sqlalchemy", "numpy", "PIL")
PROBE = """
import json, sys
from indexer.cli import cli
cli(sys.argv[1:], standalone_mode=False)
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.fixture
def indexed(archive_dir: Path, settings: Settings, tiny_model_dir: Path) -> Iterator[Settings]:
    cli(settings, "index", str(archive_dir / "clips"), "--model", str(tiny_model_dir))
    yield settings
    service.stop(settings, None)  # never outlive the test


def search(settings: Settings, *args: str, keep_warm: str = "5", check: bool = True) -> subprocess.CompletedProcess:
    return cli(settings, "search", *args, "--keep-warm", keep_warm, check=check)


def ranked(result: subprocess.CompletedProcess) -> list[tuple[int, float]]:
    return [(row["clip_id"], round(row["score"], 5)) for row in json.loads(result.stdout)["results"]]


def test_the_service_answers_like_the_process_and_spares_the_command_the_model_stack(indexed: Settings) -> None:
    query = ("a red circle", "-k", "5", "--rerank-k", "3", "--json")
    in_process = ranked(search(indexed, *query, keep_warm="0"))
    assert service.ping(indexed, None) is None  # --keep-warm 0 started nothing

    first = ranked(search(indexed, *query))  # starts the service and asks it
    running = service.ping(indexed, None)
    assert running is not None and first == in_process

    archive = ["--db", indexed.db_url, "--index-dir", str(indexed.index_dir)]
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, "search", *query, "--keep-warm", "5", *archive],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr
    assert ranked(probe) == in_process
    modules = json.loads(probe.stderr.strip().splitlines()[-1])
    assert not [m for m in modules if m.split(".")[0] in HEAVY]
    assert service.ping(indexed, None) == running  # the same process answered

    table = search(indexed, "a red circle", "-k", "3")
    assert "results for 'a red circle'" in table.stdout


def test_the_service_follows_index_runs_and_reports_mistakes_in_one_line(indexed: Settings, archive_dir: Path) -> None:
    long_only = ("a shape", "--json", "--path-prefix", str(archive_dir / "long"))
    assert ranked(search(indexed, *long_only)) == []
    pid = service.ping(indexed, None)["pid"]
    cli(indexed, "index", str(archive_dir / "long"))  # the archive's model: no --model needed
    found = json.loads(search(indexed, *long_only).stdout)["results"]
    assert found and all(Path(row["path"]).parent == archive_dir / "long" for row in found)

    mistake = search(indexed, "--image", str(archive_dir / "README.txt"), check=False)
    assert mistake.returncode == 2 and "README.txt: not an image" in mistake.stderr
    assert "Traceback" not in mistake.stderr and len(mistake.stderr.strip().splitlines()) == 1
    assert service.ping(indexed, None)["pid"] == pid  # a user's mistake does not end the service


def test_a_killed_or_outdated_service_is_replaced(
    indexed: Settings, archive_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    before = ranked(search(indexed, "a blue square", "--json"))
    killed = service.ping(indexed, None)["pid"]
    os.kill(killed, signal.SIGKILL)  # leaves its socket file behind
    assert ranked(search(indexed, "a blue square", "--json")) == before
    replaced = service.ping(indexed, None)["pid"]
    assert replaced != killed

    # The archive deleted and indexed anew (another folder): the old service must not answer from the old one.
    Path(indexed.db_url.removeprefix("sqlite:///")).unlink()
    shutil.rmtree(indexed.index_dir)
    cli(indexed, "index", str(archive_dir / "long"), "--model", str(tiny_model_dir))
    rows = json.loads(search(indexed, "a shape", "--json").stdout)["results"]
    assert rows and all(Path(row["path"]).parent == archive_dir / "long" for row in rows)
    assert service.ping(indexed, None)["pid"] != replaced


def test_service_ends_when_idle_and_when_asked(indexed: Settings) -> None:
    idle = cli(indexed, "service", "--idle-minutes", "0.02")  # in the foreground: 1.2 s without a search
    assert "search service stopped: idle for 0.02 minutes" in idle.stdout

    search(indexed, "a red circle")
    assert "the search service runs (pid" in cli(indexed, "service", "--status").stdout
    assert "the search service stopped (pid" in cli(indexed, "service", "--stop").stdout
    assert "no search service runs" in cli(indexed, "service", "--status").stdout


def test_a_search_where_nothing_is_indexed_still_says_so(settings: Settings) -> None:
    """The service cannot start on an empty home: the command searches in-process and reports it."""
    result = search(settings, "a red circle", check=False)
    assert result.returncode == 2 and "nothing has been indexed" in result.stderr
    assert service.ping(settings, None) is None


def test_relative_paths_name_the_same_service_from_any_folder(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = load_settings("sqlite:///state/catalog.sqlite", "state/index")
    model = os.path.relpath(tiny_model_dir, tmp_path)
    absolute = load_settings(f"sqlite:///{tmp_path}/state/catalog.sqlite", tmp_path / "state" / "index")
    assert service.canonical(relative, model) == service.canonical(absolute, str(tiny_model_dir))
    assert service.ServiceAddress.of(relative, model) == service.ServiceAddress.of(absolute, str(tiny_model_dir))
    assert service.canonical(relative, "mplug2-large-pretrain")[2] == "mplug2-large-pretrain"  # a name stays a name
