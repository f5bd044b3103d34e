"""Fixtures of the API tests: one archive indexed with the tiny model per module, and a served API over it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.settings import Settings, load_settings
from tests.api.server import Server, running
from tests.indexer.test_cli_archive import cli

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def media_root(tmp_path_factory: pytest.TempPathFactory, synthetic_media: Path) -> Path:
    root = tmp_path_factory.mktemp("api-archive")
    shutil.copytree(synthetic_media / "test", root / "clips")
    shutil.copytree(synthetic_media / "long" / "videos", root / "long")
    return root


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, media_root: Path, tiny_model_dir: Path) -> Settings:
    state = tmp_path_factory.mktemp("api-state")
    settings = load_settings(db_url=f"sqlite:///{state / 'catalog.sqlite'}", index_dir=state / "index")
    cli(settings, "index", str(media_root), "--model", str(tiny_model_dir))
    return settings


@pytest.fixture(scope="module")
def api(indexed: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API with a token, over the indexed archive."""
    with running(indexed, tmp_path_factory.mktemp("api-log") / "serve.log", TOKEN) as server:
        yield server
