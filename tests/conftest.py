"""Shared pytest set-up: CPU-only, quiet torch threads, and skips for missing system tools."""

from __future__ import annotations

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Ray reads this once, when it is imported (ray_constants), so it must be set before any test module imports ray:
# with it, every node of a test cluster takes 127.0.0.1 instead of the machine's external address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# `search` searches in its own process unless a test asks for the resident service (tests/indexer/test_service.py):
# a service started by every CLI test would outlive it by minutes.
os.environ.setdefault("MPLUG2_SEARCH_KEEP_WARM", "0")

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from indexer.media.corpus import bad_files
from indexer.settings import Settings, load_settings
from indexer.synthetic.generate import generate
from indexer.synthetic.vocab import write_synthetic_vocab
from mplug2 import create_model, save_model_folder

_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """A real PostgreSQL server for the whole session, or a skip saying why there is none."""
    from tests.pg_server import start_postgres

    server, reason = start_postgres()
    if server is None:
        pytest.skip(reason)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty database URL: a SQLite file, then a database on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    from tests.pg_server import create_database

    server = request.getfixturevalue("postgres_server")
    return create_database(server, f"test_{next(_database_numbers)}")


# A tiny random model folder, and small real archives made with ffmpeg (indexer, engine and UI tests).


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    torch.manual_seed(0)
    vocab = write_synthetic_vocab(folder / "vocab.txt")
    return save_model_folder(create_model("mplug2-tiny"), vocab, folder / "model")


@pytest.fixture(scope="session")
def synthetic_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Test-split videos and images plus one multi-scene video, generated once."""
    out = tmp_path_factory.mktemp("synthetic-media")
    generate(out, seed=11, train_videos=0, train_images=0, test_videos=12, test_images=4, long_videos=1, workers=2)
    return out


@pytest.fixture
def archive_dir(tmp_path: Path, synthetic_media: Path) -> Path:
    """A fresh archive folder: 12 short videos, 4 images, a long video, and a handful of broken files."""
    root = tmp_path / "archive"
    shutil.copytree(synthetic_media / "test", root / "clips")
    shutil.copytree(synthetic_media / "long" / "videos", root / "long")
    bad = bad_files(tmp_path / "bad-corpus")
    (root / "broken").mkdir()
    for file in bad:
        if file.path.name in ("zero-bytes.mp4", "notes.mp4", "truncated-before-moov.mp4", "audio-only.mp4"):
            shutil.copy(file.path, root / "broken" / file.path.name)
    (root / "README.txt").write_text("not media, and not named like it")
    return root


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        db_url=f"sqlite:///{tmp_path / 'state' / 'catalog.sqlite'}", index_dir=tmp_path / "state" / "index"
    )
