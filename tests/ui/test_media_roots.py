"""The app indexes only inside its media folders (`ui --media-root`): resolved paths, so `..`, symbolic links and
absolute paths cannot escape; served beyond loopback without one, it offers no indexing and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from indexer.settings import Settings
from search_ui import jobs
from search_ui.state import app_config
from tests.ui.test_app import APP, texts


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    media = tmp_path / "media"
    (media / "holidays").mkdir(parents=True)
    secret = tmp_path / "media-private"  # shares the root's name as a prefix: must not count as inside
    secret.mkdir()
    (media / "to-private").symlink_to(secret, target_is_directory=True)
    (tmp_path / "media-link").symlink_to(media, target_is_directory=True)
    return {"media": media, "secret": secret, "base": tmp_path}


def test_inside_is_allowed(tree: dict[str, Path]) -> None:
    media = tree["media"]
    assert jobs.indexable_folder(media / "holidays", [media]) == (media / "holidays").resolve()
    assert jobs.indexable_folder(media, [media]) == media.resolve()
    # a root given through a link, and a folder given through a link to the root
    assert jobs.indexable_folder(tree["base"] / "media-link" / "holidays", [media]) == (media / "holidays").resolve()
    assert jobs.indexable_folder(media / "holidays", [tree["base"] / "media-link"]) == (media / "holidays").resolve()


@pytest.mark.parametrize(
    "escape",
    [
        lambda t: t["media"] / ".." / "media-private",  # `..`
        lambda t: t["media"] / "holidays" / ".." / ".." / "media-private",
        lambda t: t["media"] / "to-private",  # a link inside the root to a folder outside
        lambda t: t["secret"],  # an absolute path outside (and a name prefix trick)
        lambda t: Path("/"),
    ],
)
def test_escapes_are_refused(tree: dict[str, Path], escape) -> None:
    with pytest.raises(ValueError, match="outside the media folders"):
        jobs.indexable_folder(escape(tree), [tree["media"]])


def test_without_roots_any_folder_on_loopback(tree: dict[str, Path]) -> None:
    assert jobs.indexable_folder(tree["secret"]) == tree["secret"].resolve()


def _library(monkeypatch: pytest.MonkeyPatch, settings: Settings, host: str, roots: str) -> AppTest:
    monkeypatch.setenv("MPLUG2_SEARCH_DB", settings.db_url)
    monkeypatch.setenv("MPLUG2_SEARCH_INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("MPLUG2_SEARCH_HOST", host)
    monkeypatch.setenv("MPLUG2_SEARCH_MEDIA_ROOTS", roots)
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.sidebar.radio(key="page").set_value("Library").run()
    assert not app.exception, app.exception
    return app


def test_served_beyond_loopback_without_roots_offers_no_indexing(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    app = _library(monkeypatch, settings, "0.0.0.0", "")
    assert "served on 0.0.0.0" in texts(app.info) and "--media-root" in texts(app.info)
    assert not [field for field in app.text_input if field.key == "index_folder_path"]


def test_served_beyond_loopback_with_roots_indexes_only_inside(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, tree: dict[str, Path]
) -> None:
    app = _library(monkeypatch, settings, "0.0.0.0", str(tree["media"]))
    assert app_config().media_roots == (tree["media"].resolve(),)
    app.text_input(key="index_folder_path").input(str(tree["media"] / ".." / "media-private"))
    app.form_submit_button[0].click().run()
    assert "outside the media folders" in texts(app.error)
    assert jobs.current_job(settings) is None  # nothing was started
