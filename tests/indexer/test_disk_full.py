"""A full disk stops an index run with one line (where, how much is free, what to do), never a traceback; what was
committed stays, and once there is space the next run finishes with `verify` clean.

The archive lives on a real 3 MB tmpfs (mounting one needs root: skipped otherwise), most of it taken by a ballast
file, as on a disk that other files have filled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.settings import Settings, load_settings
from indexer.store.archive import Archive
from tests.indexer.test_pipeline import index_command

FREE_KB = 400  # room for the catalog, the first few files' clips, and then no more


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        (mount / "ballast").write_bytes(bytes((3 << 20) - FREE_KB * 1024))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def ready_clips(settings: Settings) -> set[int]:
    archive = Archive(settings)
    try:
        return set(archive.catalog.ready_clip_ids().tolist())
    finally:
        archive.close()


def test_a_full_disk_stops_the_run_with_one_line_and_the_rerun_completes(
    archive_dir: Path, tiny_model_dir: Path, small_disk: Path
) -> None:
    settings = load_settings(f"sqlite:///{small_disk / 'catalog.sqlite'}", small_disk / "index")
    command = index_command(archive_dir, settings, tiny_model_dir, json_output=False)
    full = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "MPLUG2_SEARCH_HOME": str(small_disk)}
    )
    output = full.stdout + full.stderr
    assert full.returncode == 2, output
    assert "Traceback" not in output
    errors = [line for line in full.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    assert f"disk full at {small_disk}" in errors[0] and "MB free" in errors[0], errors[0]
    assert "--index-dir" in errors[0] and "--feature-mode" in errors[0]
    committed = ready_clips(settings)
    print(f"disk full: {errors[0]!r}; {len(committed)} clips committed before it")

    (small_disk / "ballast").unlink()  # space freed
    rerun = subprocess.run(command, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert committed <= ready_clips(settings), "nothing committed was lost"
    verify = [
        sys.executable,
        "-m",
        "indexer",
        "verify",
        "--db",
        settings.db_url,
        "--index-dir",
        str(settings.index_dir),
    ]
    checked = subprocess.run(verify, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
