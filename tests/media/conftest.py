"""The media corpus (real files encoded by ffmpeg), built once per test session."""

from __future__ import annotations

import shutil

import pytest

from indexer.media.corpus import CorpusFile, build_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CorpusFile]:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (run scripts/setup.sh --test)")
    files = build_corpus(tmp_path_factory.mktemp("corpus"))
    return {file.path.name: file for file in files}
