"""The search engine over a real indexed archive: results, one final score for every kind, filters inside the search,
one result per file, example-image queries, re-rank features recomputed from files, and search during indexing."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.search.engine import SearchEngine
from indexer.search.scoring import DEFAULT_RERANK_K, RerankChoice
from indexer.settings import Settings
from indexer.store.db import SearchFilters
from tests.indexer.test_pipeline import REPO, count, index_command, run_index, wait_for


@pytest.fixture
def engine(archive_dir: Path, settings: Settings, tiny_model_dir: Path):
    old = datetime(2020, 1, 1).timestamp()
    for path in (archive_dir / "clips" / "images").iterdir():
        os.utime(path, (old, old))
    run_index(archive_dir, settings, tiny_model_dir)
    engine = SearchEngine.open(settings)
    yield engine
    engine.close()


def test_results_carry_clip_times_and_every_score(engine: SearchEngine) -> None:
    response = engine.search("a small red circle moves to the left", k=8, rerank_k=5)
    assert len(response.results) == 8 and response.reranked == 5
    assert [r.rank for r in response.results] == list(range(1, 9))
    top, rest = response.results[:5], response.results[5:]
    assert all(r.reranked and r.itm_score is not None for r in top) and not any(r.reranked for r in rest)
    for result in top:  # cosine / τ + ITM log-odds
        assert result.score == pytest.approx(result.itc_score / engine.bundle.temperature + result.itm_score, rel=1e-5)
    assert [r.score for r in top] == sorted((r.score for r in top), reverse=True)
    assert [r.itc_score for r in rest] == sorted((r.itc_score for r in rest), reverse=True)
    assert all(Path(r.path).is_file() and r.end >= r.start for r in response.results)
    assert set(response.timings) >= {"encode_query", "vector_search", "metadata", "rerank", "total"}


def test_a_mixed_list_of_videos_and_images_ranks_on_one_scale(engine: SearchEngine) -> None:
    everything = len(engine.archive.catalog.ready_clip_ids())
    response = engine.search("a small red circle in the top left", k=everything, rerank_k=everything)
    assert {r.kind for r in response.results} == {"video", "image"} and all(r.reranked for r in response.results)
    for result in response.results:  # the same formula whatever the kind (the official recipe differs by kind)
        assert result.score == pytest.approx(result.itc_score / engine.bundle.temperature + result.itm_score, rel=1e-5)
    assert [r.score for r in response.results] == sorted((r.score for r in response.results), reverse=True)


def test_the_model_folders_rerank_choice_is_the_default(settings: Settings, engine: SearchEngine) -> None:
    folder = Path(engine.bundle.name)
    assert engine.rerank_choice == RerankChoice(), "no rerank.json: the defaults"
    assert engine.search("a red circle", k=8).reranked == min(
        DEFAULT_RERANK_K, len(engine.archive.catalog.ready_clip_ids())
    )
    try:
        RerankChoice(rerank_k=0, helps=False, chosen_by="a test").write(folder)
        off = SearchEngine.open(settings)
        assert off.rerank_choice.rerank_k == 0 and not off.rerank_choice.helps
        assert off.search("a red circle", k=8).reranked == 0, "re-ranking off where it does not help"
        assert off.search("a red circle", k=8, rerank_k=3).reranked == 3, "the user can still override"
        off.close()
        RerankChoice(rerank_k=5, helps=True, chosen_by="a test").write(folder)
        five = SearchEngine.open(settings)
        assert five.search("a red circle", k=8).reranked == 5
        five.close()
    finally:
        (folder / "rerank.json").unlink(missing_ok=True)


def test_filters_act_inside_the_vector_search(engine: SearchEngine, archive_dir: Path) -> None:
    images = engine.search("a circle", k=3, filters=SearchFilters(kinds=("image",)))
    assert len(images.results) == 3 and {r.kind for r in images.results} == {"image"}
    long = engine.search("a circle", k=3, filters=SearchFilters(path_prefix=str(archive_dir / "long")))
    assert len(long.results) == 3 and all("/long/" in r.path for r in long.results)
    short = engine.search("a circle", k=50, filters=SearchFilters(kinds=("video",), max_duration=7.0))
    assert short.results and all(r.kind == "video" and r.end - r.start <= 7.0 for r in short.results)
    dated = engine.search("a circle", k=50, filters=SearchFilters(modified_before=datetime(2021, 1, 1)))
    assert len(dated.results) == 4 and {r.kind for r in dated.results} == {"image"}
    assert engine.search("a circle", filters=SearchFilters(path_prefix="/nowhere")).results == []


def test_one_result_per_file(engine: SearchEngine) -> None:
    everything = engine.search("a shape", k=100, rerank_k=0)
    assert len({r.media_id for r in everything.results}) < len(everything.results), "the long video has many clips"
    distinct = engine.search("a shape", k=100, rerank_k=0, one_per_file=True)
    media = [r.media_id for r in distinct.results]
    assert len(media) == len(set(media)) == 17


def test_an_example_image_finds_itself(engine: SearchEngine, archive_dir: Path) -> None:
    path = sorted((archive_dir / "clips" / "images").iterdir())[0]
    response = engine.search(np.asarray(Image.open(path).convert("RGB")), k=3)
    assert response.results[0].path == str(path) and response.reranked == 0
    assert response.results[0].itc_score == pytest.approx(1.0, abs=1e-3)


def test_feature_mode_none_recomputes_the_same_itm_scores(archive_dir: Path, tmp_path: Path, tiny_model_dir: Path):
    from indexer.settings import load_settings

    scores = {}
    for mode in ("full", "none"):
        settings = load_settings(db_url=f"sqlite:///{tmp_path / mode / 'c.sqlite'}", index_dir=tmp_path / mode / "idx")
        run_index(archive_dir, settings, tiny_model_dir, feature_mode=mode)
        engine = SearchEngine.open(settings)
        response = engine.search("a green square grows", k=6, rerank_k=6)
        scores[mode] = {(Path(r.path).name, r.start): r.itm_score for r in response.results}
        engine.close()
    assert scores["full"].keys() == scores["none"].keys()
    for key, value in scores["full"].items():
        assert scores["none"][key] == pytest.approx(value, abs=2e-2)  # stored tokens are float16


@pytest.mark.slow
def test_searching_while_an_index_run_commits_sees_whole_files_only(
    archive_dir: Path, settings: Settings, tiny_model_dir: Path
) -> None:
    process = subprocess.Popen(
        index_command(archive_dir, settings, tiny_model_dir),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: count(settings, "SELECT count(*) FROM media WHERE status='indexed'") >= 1)
    engine = SearchEngine.open(settings)
    seen_sizes = set()
    try:
        while process.poll() is None:
            response = engine.search("a blue star", k=200, rerank_k=0)
            by_file: dict[int, int] = {}
            for result in response.results:
                by_file[result.media_id] = by_file.get(result.media_id, 0) + 1
            catalog = engine.archive.catalog
            for media_id, clips in by_file.items():
                assert clips == len(catalog.clips_of_media(media_id)), "a file is searchable whole or not"
                assert (
                    catalog.media_by_path(next(r.path for r in response.results if r.media_id == media_id)).status
                    == "indexed"
                )
            seen_sizes.add(len(response.results))
            time.sleep(0.05)
        assert process.returncode == 0
        engine.refresh()
        ready = engine.archive.catalog.ready_clip_ids()
        assert len(engine.search("a blue star", k=200, rerank_k=0).results) == len(ready)
    finally:
        engine.close()
    assert len(seen_sizes) > 1, "searches ran while the index grew"
