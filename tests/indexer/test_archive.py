"""The archive as the one owner of its stores, on small real archives: durable metadata, the feature mode an archive
recorded, the engine's single open and cheap freshness check, one hash per changed file, shots found in the pool."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import indexer.indexing.stages.walk
import indexer.media.segment
import mplug2.bundle
from indexer.cli import cli
from indexer.indexing.options import IndexOptions
from indexer.media.segment import SegmentPolicy
from indexer.search.engine import SearchEngine
from indexer.settings import Settings
from indexer.store.archive import Archive, ArchiveError
from mplug2 import load_model_bundle
from tests.indexer.test_pipeline import run_index


@pytest.fixture
def small_archive(tmp_path: Path, synthetic_media: Path) -> Path:
    """Three short videos and two pictures: enough for a run, quick to index."""
    root = tmp_path / "small"
    root.mkdir()
    for kind, count in (("videos", 3), ("images", 2)):
        for path in sorted((synthetic_media / "test" / kind).iterdir())[:count]:
            shutil.copy(path, root / path.name)
    return root


def test_archive_json_is_written_durably(
    small_archive: Path, settings: Settings, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """archive.json records the model the vectors belong to: it must be fsynced, and its folder too, before the
    run relies on it (a rename alone can be undone by a power cut)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    archive = Archive(settings)
    archive.bind_model(load_model_bundle(tiny_model_dir, with_fusion=False))
    archive.close()
    meta = settings.index_dir / "archive.json"
    assert any(Path(path).name == ".archive.json.tmp" for path in synced), synced
    assert str(settings.index_dir) in synced, "the folder holding the rename is synced"
    assert meta.exists() and not list(settings.index_dir.glob(".*.tmp"))


def click_unset() -> object:
    """What click (8.3 and later) puts where an option declares no default."""
    import click.core

    return getattr(click.core, "UNSET", None)


def test_the_index_command_takes_its_defaults_from_index_options() -> None:
    defaults = {param.name: param.default for param in cli.commands["index"].params}
    options, segment = IndexOptions(), SegmentPolicy()
    assert defaults["feature_mode"] in (None, click_unset()), "no default: the archive's recorded mode applies"
    assert (defaults["workers"], defaults["batch_size"]) == (options.workers, options.batch_size)
    assert (defaults["decode_timeout"], defaults["decode_memory_mb"]) == (
        options.decode_timeout_s,
        options.decode_memory_mb,
    )
    assert (defaults["segment"], defaults["window"], defaults["min_clip"], defaults["max_clip"]) == (
        segment.mode,
        segment.window,
        segment.min_len,
        segment.max_len,
    )


def test_a_pooled_archive_stays_pooled_when_a_later_run_names_no_mode(
    small_archive: Path, settings: Settings, tiny_model_dir: Path, synthetic_media: Path
) -> None:
    run_index(small_archive, settings, tiny_model_dir, feature_mode="pooled")
    shutil.copy(sorted((synthetic_media / "test" / "images").iterdir())[-1], small_archive / "new.png")
    arguments = ["index", str(small_archive), "--model", str(tiny_model_dir), "--db", settings.db_url]
    result = CliRunner().invoke(cli, [*arguments, "--index-dir", str(settings.index_dir), "--json"])
    assert result.exit_code == 0, result.output
    archive = Archive(settings)
    assert archive.meta["feature_mode"] == "pooled"
    forms = archive.store.forms(archive.store.ids())
    archive.close()
    assert len(forms) == 6 and set(forms) == {"pooled"}, "the new picture's clip is pooled like the rest"


def test_the_engine_opens_the_archive_once_and_does_not_rescan_ready_clips_per_query(
    small_archive: Path, settings: Settings, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_index(small_archive, settings, tiny_model_dir)
    opened: list[Archive] = []
    real_init = Archive.__init__

    def counting_init(self: Archive, *args, **kwargs) -> None:
        opened.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Archive, "__init__", counting_init)
    engine = SearchEngine.open(settings)
    assert len(opened) == 1
    scans: list[int] = []
    real_ready = engine.archive.catalog.ready_clip_ids
    monkeypatch.setattr(engine.archive.catalog, "ready_clip_ids", lambda: scans.append(1) or real_ready())
    for query in ("a red circle", "a blue square", "a green star"):
        assert engine.search(query, k=3, rerank_k=0).results
    assert scans == [], "nothing changed, so no query fetched every ready clip id"
    shutil.copy(next(small_archive.glob("*.png")), small_archive / "copy.png")
    run_index(small_archive, settings, tiny_model_dir)  # another process's commit, as far as the engine knows
    found = engine.search("a shape", k=10, rerank_k=0).results
    assert "copy.png" in {Path(r.path).name for r in found}, "the next query sees the new commit"
    engine.close()


def test_a_changed_file_is_hashed_once(
    small_archive: Path, settings: Settings, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_index(small_archive, settings, tiny_model_dir)
    video = sorted(small_archive.glob("*.mp4"))[0]
    data = bytearray(video.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, new content, new mtime: the hash must decide
    video.write_bytes(bytes(data))
    os.utime(video, (video.stat().st_atime + 100, video.stat().st_mtime + 100))
    hashed: list[str] = []
    real_hash = indexer.indexing.stages.walk.content_hash
    monkeypatch.setattr(
        indexer.indexing.stages.walk, "content_hash", lambda path: hashed.append(str(path)) or real_hash(path)
    )
    summary = run_index(small_archive, settings, tiny_model_dir)
    assert summary.unchanged == 4 and summary.indexed + summary.failed == 1
    assert hashed == [str(video)]


def test_shots_are_found_in_the_decode_pool_not_in_the_indexing_process(
    tmp_path: Path, synthetic_media: Path, settings: Settings, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shot detection decodes the whole video: it must run in a killable worker (with the pool's time-out and
    memory limit), never in the process that holds the model and the archive."""

    def tripwire(*args, **kwargs):
        raise AssertionError("shot detection ran in the indexing process")

    monkeypatch.setattr(indexer.media.segment, "detect_cuts", tripwire)  # workers are fresh interpreters
    root = tmp_path / "long"
    shutil.copytree(synthetic_media / "long" / "videos", root)
    summary = run_index(root, settings, tiny_model_dir, segment=SegmentPolicy("shots", min_len=1.0))
    assert summary.failed == 0 and summary.indexed == 1
    assert summary.clips > 1, "the multi-scene video is cut at its scene changes"
    assert summary.timings["segment"] > 0


def test_a_second_index_run_on_the_same_archive_is_refused(tmp_path: Path) -> None:
    from indexer.store.archive import ArchiveError
    from indexer.store.lock import IndexLock

    with IndexLock(tmp_path), pytest.raises(ArchiveError, match=f"pid {os.getpid()}"):
        IndexLock(tmp_path).__enter__()
    with IndexLock(tmp_path):  # released on exit
        pass


def test_search_trusts_the_recorded_weights_file_and_checks_any_other(
    small_archive: Path, settings: Settings, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening an archive with the weights file its index run recorded (same path, size, time) skips the pass over
    every weight; the same weights elsewhere are fingerprinted and accepted; changed weights are refused."""
    from safetensors.torch import load_file, save_file

    run_index(small_archive, settings, tiny_model_dir)
    fingerprinted: list[str] = []
    real = mplug2.bundle.model_fingerprint
    monkeypatch.setattr(mplug2.bundle, "model_fingerprint", lambda model: fingerprinted.append("x") or real(model))
    SearchEngine.open(settings, str(tiny_model_dir)).close()
    assert fingerprinted == []
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    SearchEngine.open(settings, str(copy)).close()
    assert fingerprinted == ["x"], "another weights file: fingerprinted, and the same weights are accepted"
    weights = load_file(copy / "model.safetensors")
    name = next(key for key in sorted(weights) if key.startswith("text_proj."))
    weights[name] = weights[name] + 0.01
    save_file(weights, copy / "model.safetensors")
    with pytest.raises(ArchiveError, match="indexed with"):
        SearchEngine.open(settings, str(copy))
