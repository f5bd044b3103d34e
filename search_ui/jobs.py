"""Indexing started from the app: a separate `mplug2-search index` process whose state lives in files.

The process writes its progress to a JSON file next to the index; the app only reads that file. A page reload, a
second browser tab or a restart of the app finds the same job, and a job outlives the app that started it (it is
an independent session: closing the app does not kill an index run halfway).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from indexer.atomic import atomic_write_json
from indexer.settings import Settings


@dataclass(frozen=True)
class IndexJob:
    folder: str
    pid: int
    started: float
    running: bool
    progress: dict  # {"done", "total", "indexed", "failed", ...} and, at the end, "status"
    log_tail: str

    @property
    def fraction(self) -> float:
        total = self.progress.get("total") or 0
        return min(1.0, self.progress.get("done", 0) / total) if total else 0.0


def _paths(settings: Settings) -> tuple[Path, Path, Path]:
    folder = settings.index_dir / "ui-job"
    return folder / "job.json", folder / "progress.json", folder / "log.txt"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def current_job(settings: Settings) -> IndexJob | None:
    job_file, progress_file, log_file = _paths(settings)
    if not job_file.is_file():
        return None
    job = json.loads(job_file.read_text())
    try:
        progress = json.loads(progress_file.read_text())
    except (OSError, ValueError):
        progress = {}  # not written yet (or mid-replace on a file system without atomic rename)
    try:
        log_tail = log_file.read_text(errors="replace")[-2000:]
    except OSError:
        log_tail = ""
    running = _alive(job["pid"]) and "status" not in progress
    return IndexJob(job["folder"], job["pid"], job["started"], running, progress, log_tail)


def indexable_folder(folder: str | Path, media_roots: Sequence[Path] = ()) -> Path:
    """The real path of `folder` (links and `..` resolved), checked to be a folder inside one of `media_roots`
    (when any are given). Raises ValueError with a message for the page."""
    text = str(folder).strip()
    path = Path(text).expanduser()
    if not text or not path.is_dir():
        raise ValueError(f"{text or '(empty)'}: not a folder on this machine; give the full path of a folder to index")
    resolved = path.resolve()
    if media_roots and not any(resolved.is_relative_to(Path(root).resolve()) for root in media_roots):
        allowed = ", ".join(str(root) for root in media_roots)
        raise ValueError(
            f"{text} is outside the media folders this app may index ({allowed}); pick a folder inside them"
        )
    return resolved


def start_job(
    settings: Settings, folder: str | Path, media_roots: Sequence[Path] = (), prune_missing: bool = False
) -> IndexJob:
    """Start indexing `folder` in the background. Raises ValueError for a bad folder (or one outside `media_roots`)
    or while a job runs. `prune_missing`: also forget the offline files under it (the folder, an indexed root, may
    itself be the one that is gone)."""
    if prune_missing and not Path(folder).is_dir():
        path = Path(folder)
        if media_roots and not any(path.is_relative_to(Path(root).resolve()) for root in media_roots):
            raise ValueError(f"{folder} is outside the media folders this app may index")
    else:
        path = indexable_folder(folder, media_roots)
    running = current_job(settings)
    if running is not None and running.running:
        raise ValueError(f"indexing of {running.folder} is still running; wait for it to finish")
    job_file, progress_file, log_file = _paths(settings)
    job_file.parent.mkdir(parents=True, exist_ok=True)
    progress_file.unlink(missing_ok=True)
    # The resolved path is what gets indexed: a link swapped after the check cannot lead the run elsewhere.
    command = [sys.executable, "-m", "indexer", "index", str(path), "--progress-file", str(progress_file)]
    command += ["--db", settings.db_url, "--index-dir", str(settings.index_dir)]
    if prune_missing:
        command.append("--prune-missing")
    if settings.model:
        command += ["--model", settings.model]
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    # Reap the process when it ends: the app is its parent, and an exited child nobody waits for stays a zombie.
    threading.Thread(target=process.wait, name=f"reap-index-{process.pid}", daemon=True).start()
    record = {"folder": str(path), "pid": process.pid, "started": time.time()}
    atomic_write_json(job_file, record)
    return IndexJob(record["folder"], process.pid, record["started"], True, {}, "")
