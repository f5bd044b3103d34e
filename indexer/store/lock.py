"""One index run per archive at a time: an advisory lock on a file in the index folder, released by the kernel when
the holder dies (so a killed run never leaves the archive locked)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from indexer.store.errors import ArchiveError


class IndexLock:
    """One index run per archive at a time (a second one would fight over the feature store and the index)."""

    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / "index.lock"
        self._handle = None

    def __enter__(self) -> IndexLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a+")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "another process"
            self._handle.close()
            raise ArchiveError(
                f"an index run is already in progress on {self.path.parent} (pid {holder}); wait for "
                "it or stop it first"
            ) from None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(str(os.getpid()))
        self._handle.flush()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
