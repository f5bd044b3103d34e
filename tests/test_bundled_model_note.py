"""An archive searched with the bundled synthetic-shapes model says so where the user looks: a line on stderr from
`index` and `search` (JSON on stdout stays parseable), and a banner in the app; with another model, nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from indexer.cli import cli
from indexer.settings import REAL_MODEL_COMMAND, Settings, default_model_dir
from tests.ui.test_app import APP


@pytest.fixture
def pictures(tmp_path: Path, synthetic_media: Path) -> Path:
    folder = tmp_path / "pictures"
    shutil.copytree(synthetic_media / "test" / "images", folder)
    return folder


def _archive(settings: Settings) -> list[str]:
    return ["--db", settings.db_url, "--index-dir", str(settings.index_dir)]


def _app_texts(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MPLUG2_SEARCH_DB", settings.db_url)
    monkeypatch.setenv("MPLUG2_SEARCH_INDEX_DIR", str(settings.index_dir))
    app = AppTest.from_file(APP, default_timeout=120).run()
    assert not app.exception, app.exception
    return "\n".join(str(element.value) for element in app.info)


def test_bundled_model_is_named_with_the_way_out(
    pictures: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    indexed = runner.invoke(cli, ["index", str(pictures), "--json", *_archive(settings)])
    assert indexed.exit_code == 0, indexed.output
    assert REAL_MODEL_COMMAND in indexed.stderr and "mplug2-synth" in indexed.stderr
    found = runner.invoke(cli, ["search", "a red circle", "--json", *_archive(settings)])
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)["results"] and REAL_MODEL_COMMAND in found.stderr
    assert REAL_MODEL_COMMAND in _app_texts(settings, monkeypatch)


def test_no_note_for_other_models(
    pictures: Path, settings: Settings, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tiny_model_dir.resolve() != default_model_dir().resolve()
    runner = CliRunner()
    indexed = runner.invoke(cli, ["index", str(pictures), "--model", str(tiny_model_dir), *_archive(settings)])
    assert indexed.exit_code == 0 and REAL_MODEL_COMMAND not in indexed.stderr
    found = runner.invoke(cli, ["search", "a red circle", *_archive(settings)])
    assert found.exit_code == 0 and REAL_MODEL_COMMAND not in found.stderr
    assert REAL_MODEL_COMMAND not in _app_texts(settings, monkeypatch)
