"""Indexing on a real multi-node Ray cluster on this machine (a head and two worker nodes of one CPU each, all on
127.0.0.1), with real kills: the archive must come out as a local run makes it, each file exactly once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from indexer.indexing.pipeline import IndexOptions, index_paths
from indexer.media.corpus import bad_files
from indexer.settings import Settings, load_settings
from indexer.store.archive import Archive
from mplug2 import load_model_bundle

from .test_pipeline import BROKEN, assert_consistent, count, wait_for

ray = pytest.importorskip("ray", reason="Ray is not installed (the test extra installs it)")
from ray.cluster_utils import Cluster  # noqa: E402

from indexer.indexing.ray_index import RayIndexer, RayOptions, index_on_ray  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NODE = {"num_cpus": 1, "object_store_memory": 96 << 20}
FILES = 17  # the archive fixture's good files: 12 short videos, 4 images, a long multi-clip video


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head and two worker nodes, one CPU each, on loopback, shared by this module's tests (a test that removes a
    node adds a fresh one back); every process it started is gone afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every node on 127.0.0.1 (see MACHINE_NOTES.md)
        patch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        cluster = Cluster()
        try:
            cluster = _start(cluster)
            yield cluster
        finally:
            ours = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()
            _, alive = psutil.wait_procs(ours, timeout=20)
            for process in alive:  # by pid, only processes this fixture started
                process.kill()


def _start(cluster: Cluster, attempts: int = 2) -> Cluster:
    """Three nodes. Ray gives a node a fixed 30 s to register: on a heavily loaded machine a start can miss that
    once, which says nothing about indexing, so a failed start is retried once on a fresh cluster."""
    for attempt in range(attempts):
        try:
            for _ in range(3):
                cluster.add_node(**NODE)  # the first is the head
            cluster.wait_for_nodes()
            return cluster
        except Exception:  # Ray raises a bare Exception for a node that timed out starting
            cluster.shutdown()
            if attempt == attempts - 1:
                raise
            cluster = Cluster()
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, synthetic_media: Path) -> Path:
    """The indexer tests' archive (12 short videos, 4 images, a long video, 4 broken files), read-only here."""
    root = tmp_path_factory.mktemp("ray-archive") / "archive"
    shutil.copytree(synthetic_media / "test", root / "clips")
    shutil.copytree(synthetic_media / "long" / "videos", root / "long")
    (root / "broken").mkdir()
    for file in bad_files(tmp_path_factory.mktemp("bad-corpus")):
        if file.path.name in BROKEN:
            shutil.copy(file.path, root / "broken" / file.path.name)
    return root


def state(tmp_path: Path, name: str) -> Settings:
    return load_settings(f"sqlite:///{tmp_path / name / 'catalog.sqlite'}", tmp_path / name / "index")


def clips_by_place(settings: Settings) -> dict[tuple[str, float, float], tuple[int, np.ndarray]]:
    """(file, start, end) -> (clip id, ITC vector) for every searchable clip."""
    archive = Archive(settings)
    ids, feats = archive.store.itc()
    vectors = dict(zip(ids.tolist(), feats, strict=True))
    result = {}
    for root in archive.catalog.roots():
        for media in archive.catalog.media_under(root):
            for clip in archive.catalog.clips_of_media(media.id):
                result[(media.path, round(clip.start, 3), round(clip.end, 3))] = (clip.id, vectors[clip.id])
    archive.close()
    return result


def assert_same_archive(mine: Settings, reference: Settings) -> None:
    """Same clips with the same ids, the same vectors, and each file exactly once."""
    assert_consistent(mine)
    got, wanted = clips_by_place(mine), clips_by_place(reference)
    assert got.keys() == wanted.keys()
    assert {place: clip_id for place, (clip_id, _) in got.items()} == {p: c for p, (c, _) in wanted.items()}
    for place, (_, vector) in got.items():
        np.testing.assert_allclose(vector, wanted[place][1], atol=1e-5, err_msg=str(place))
    archive = Archive(mine)
    media = [m for root in archive.catalog.roots() for m in archive.catalog.media_under(root)]
    archive.close()
    assert len(media) == len({m.path for m in media}) == FILES + len(BROKEN)
    assert sorted(m.status for m in media) == sorted(["indexed"] * FILES + ["failed"] * len(BROKEN))


@pytest.fixture(scope="module")
def local_reference(media: Path, tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Settings:
    """The archive as local indexing makes it (one decode worker: clip ids in file order, as a Ray run gives)."""
    settings = state(tmp_path_factory.mktemp("reference"), "local")
    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    summary = index_paths([media], settings, bundle, IndexOptions(progress=False, workers=1, batch_size=4))
    assert summary.indexed == FILES and summary.failed == len(BROKEN)
    return settings


def test_a_worker_process_killed_and_a_node_lost_cost_retries_only(
    cluster: Cluster, media: Path, tmp_path: Path, tiny_model_dir: Path, local_reference: Settings
) -> None:
    settings = state(tmp_path, "ray")
    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    faults: list[str] = []

    def strike(progress: dict) -> None:
        """First commit: SIGKILL the encoder actor's process. Fifth: remove a worker node, no grace."""
        if progress["done"] >= 1 and not faults:
            node, pid = ray.get(indexer.actors[0].where.remote())
            os.kill(pid, signal.SIGKILL)
            faults.append(f"encoder actor {pid} killed")
        elif progress["done"] >= 5 and len(faults) == 1:
            node, _ = ray.get(indexer.actors[0].where.remote(), timeout=120)  # the restarted actor answers
            workers = sorted(cluster.worker_nodes, key=lambda worker: worker.node_id)
            hosts = {worker.node_id: worker for worker in workers}
            # the node the actor now runs on if it is a worker node (then an actor and tasks are lost), else one
            # of the worker nodes (tasks are lost)
            victim = hosts.get(node, workers[0])
            cluster.remove_node(victim, allow_graceful=False)
            faults.append(f"node {victim.node_id[:8]} removed" + (" with the actor" if node in hosts else ""))
            cluster.add_node(**NODE)  # for the next test, which wants two worker nodes too: not waited for here

    options = IndexOptions(progress=False, batch_size=4)
    indexer = RayIndexer(settings, bundle, options, RayOptions(cluster.address), on_progress=strike)
    try:
        summary = indexer.run([media])
    finally:
        indexer.archive.close()
    assert len(faults) == 2, faults
    assert summary.status == "done" and summary.indexed == FILES and summary.failed == len(BROKEN), faults
    assert {path.rsplit("/", 1)[-1] for path, _, _ in summary.failures} == set(BROKEN), summary.failures
    assert sum(stats.decode_tasks for stats in summary.nodes.values()) >= FILES
    assert all(name.startswith("127.0.0.1/") for name in summary.nodes), list(summary.nodes)  # address/id, loopback
    assert_same_archive(settings, local_reference)


def test_a_driver_killed_with_kill_9_leaves_an_archive_the_next_run_completes(
    cluster: Cluster, media: Path, tmp_path: Path, tiny_model_dir: Path, local_reference: Settings
) -> None:
    settings = state(tmp_path, "ray")
    command = [sys.executable, "-m", "indexer", "index", str(media), "--ray", cluster.address]
    command += ["--model", str(tiny_model_dir), "--db", settings.db_url, "--index-dir", str(settings.index_dir)]
    command += ["--batch-size", "4", "--json"]
    driver = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: count(settings, "SELECT count(*) FROM media WHERE status='indexed'") >= 1, timeout=180)
    except TimeoutError:
        driver.kill()
        raise AssertionError(driver.communicate()[1].decode()[-3000:]) from None
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    indexed = count(settings, "SELECT count(*) FROM media WHERE status='indexed'")
    assert indexed < FILES, "the driver was killed mid-run"

    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    options = IndexOptions(progress=False, batch_size=4)
    rerun = index_on_ray([media], settings, bundle, options, RayOptions(cluster.address))
    assert rerun.status == "done" and rerun.indexed + rerun.unchanged + rerun.failed == FILES + len(BROKEN)
    assert rerun.unchanged >= indexed, "what the killed run committed stays"
    assert_consistent(settings)
    # A local run after it finds nothing to do: the archive is the one local indexing would have made.
    local = index_paths([media], settings, bundle, IndexOptions(progress=False))
    assert local.indexed == 0 and local.unchanged == FILES + len(BROKEN) - local.failed
    archive = Archive(settings)
    media = [m for root in archive.catalog.roots() for m in archive.catalog.media_under(root)]
    archive.close()
    assert len(media) == len({m.path for m in media}) == FILES + len(BROKEN)
    assert sum(m.status == "indexed" for m in media) == FILES
    # each file's clips exactly once, the same clips (and vectors) as a local run's, though ids may differ: the
    # killed run gave out ids that the rerun does not reuse
    got, wanted = clips_by_place(settings), clips_by_place(local_reference)
    assert got.keys() == wanted.keys()
    for place, (_, vector) in got.items():
        np.testing.assert_allclose(vector, wanted[place][1], atol=1e-5, err_msg=str(place))


def test_a_local_run_never_imports_ray(tmp_path: Path, tiny_model_dir: Path, media: Path) -> None:
    settings = state(tmp_path, "local-only")
    command = [sys.executable, "-X", "importtime", "-m", "indexer", "index", str(media / "clips")]
    command += ["--model", str(tiny_model_dir), "--db", settings.db_url, "--index-dir", str(settings.index_dir)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([*command, "--json"], cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import")}
    assert "indexer.indexing.pipeline" in imported, "the import log covers the indexing run"
    assert not {name for name in imported if name == "ray" or name.startswith("ray.")}
    assert "indexer.indexing.ray_index" not in imported
    assert "indexer.indexing.ray_tasks" not in imported
