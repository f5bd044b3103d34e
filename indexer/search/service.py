"""The resident search service: one background process per archive that keeps the model and the vector index loaded
and answers `mplug2-search search` over a Unix socket.

Why: a search from the shell is mostly start-up. Importing torch and FAISS and loading the model cost 3-4 s on
2 cores; the search itself a tenth of a second. With a service running, the command imports neither torch nor FAISS
nor SQLAlchemy: it sends the query and prints the answer.

One service per (database, index folder, model, code): the socket is named by a hash of the four, in a folder only
its user can enter. `search` starts the service on first use and it ends after `idle_minutes` without a request, on
`mplug2-search service --stop`, or when the archive it serves is replaced (a new database file or archive.json):
the next search then starts a fresh one. A service that cannot start or answer is never in the way: the command
searches in-process, as it would without one. Requests are answered one at a time (the engine is not thread-safe);
each is one JSON line each way.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.settings import Settings, sqlite_path, sqlite_url

if TYPE_CHECKING:
    import numpy as np

    from indexer.search.engine import Query, SearchEngine
    from indexer.search.results import SearchResponse

log = logging.getLogger(__name__)

# How long a service started by `search` waits for the next request before it exits (and frees the model's memory).
KEEP_WARM_MINUTES = 10.0
# How long `search` waits for a service it started to load the model (a large model on a CPU takes a while), and
# for the answer to one search (re-ranking on a CPU with a large model takes seconds).
START_TIMEOUT_S = 300.0
ANSWER_TIMEOUT_S = 600.0
MAX_MESSAGE_BYTES = 64 << 20


@dataclass(frozen=True)
class ServiceAddress:
    """Where the service of one archive listens, and its log, which it holds locked for as long as it lives."""

    socket_path: Path
    log_path: Path

    @classmethod
    def of(cls, settings: Settings, model: str | None) -> ServiceAddress:
        key = json.dumps([*canonical(settings, model), _code_stamp()])
        name = hashlib.sha256(key.encode()).hexdigest()[:24]
        folder = runtime_dir()
        return cls(folder / f"{name}.sock", folder / f"{name}.log")


def canonical(settings: Settings, model: str | None) -> tuple[str, str, str | None]:
    """(database URL, index folder, model) with relative paths resolved: the same archive and model from any working
    folder name one service, and the service started for them opens exactly these."""
    database = sqlite_path(settings.db_url)
    db_url = settings.db_url if database is None else sqlite_url(database.expanduser())
    if model is not None and Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    return db_url, str(settings.index_dir.expanduser().resolve()), model


def runtime_dir() -> Path:
    """A folder that only this user can enter ($XDG_RUNTIME_DIR, else the temporary folder): whoever can reach a
    socket can search the archive."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = Path(base) / f"mplug2-search-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077 or not folder.is_dir() or folder.is_symlink():
        raise PermissionError(f"{folder} is not a private folder of this user: remove it and search again")
    return folder


def _code_stamp() -> str:
    """The code a service runs: one started before an upgrade or an edit must not answer for the new code."""
    newest, count = 0, 0
    for package in ("indexer", "mplug2"):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for path in Path(folder).rglob("*.py"):
                newest, count = max(newest, path.stat().st_mtime_ns), count + 1
    return f"{newest}:{count}"


def archive_identity(settings: Settings) -> list:
    """What changes when the archive is replaced rather than updated: the SQLite file, archive.json (rewritten when
    the model, the feature mode or the index type change). Updates are followed by the engine itself."""
    database = sqlite_path(settings.db_url)
    paths = [settings.index_dir / "archive.json", *([database] if database else [])]
    identity = []
    for path in paths:
        with contextlib.suppress(OSError):
            info = path.stat()
            identity.append([str(path), info.st_dev, info.st_ino])
    return identity


# the service


def serve(settings: Settings, model: str | None, idle_minutes: float = KEEP_WARM_MINUTES) -> str:
    """Serve searches of this archive until idle for `idle_minutes`, told to stop, or the archive is replaced.
    Returns why it stopped. Raises what opening the archive and the model raise (the caller reports it)."""
    address = ServiceAddress.of(settings, model)
    with _exclusive(address.log_path) as held:
        if not held:
            return "another service already serves this archive"
        from indexer.search.engine import SearchEngine

        engine = SearchEngine.open(settings, model)
        identity = archive_identity(settings)
        # Holding the lock, any socket file is a dead service's (killed before it could remove it).
        address.socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        signal.signal(signal.SIGTERM, _exit_on_signal)
        try:
            listener.bind(str(address.socket_path))
            os.chmod(address.socket_path, 0o600)
            listener.listen(8)
            listener.settimeout(idle_minutes * 60)
            log.info("serving %s with %s (pid %d)", settings.index_dir, engine.bundle.name, os.getpid())
            while True:
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    return f"idle for {idle_minutes:g} minutes"
                with connection:
                    stop = _answer(connection, engine, settings, identity)
                if stop:
                    return stop
        finally:
            listener.close()
            address.socket_path.unlink(missing_ok=True)
            engine.close()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[bool]:
    """An exclusive lock for as long as the service lives (released by the system if it dies)."""
    with open(lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _lock_held(lock_path: Path) -> bool:
    with _exclusive(lock_path) as acquired:
        return not acquired


def _answer(connection: socket.socket, engine: SearchEngine, settings: Settings, identity: list) -> str | None:
    """Answer one request; returns why to stop after it, or None to go on."""
    connection.settimeout(10)
    try:
        request = json.loads(_read_line(connection))
    except (OSError, ValueError) as error:
        log.warning("unreadable request: %s", error)
        return None
    operation = request.get("op")
    stop = None
    if operation == "ping":
        reply: dict = {"pid": os.getpid(), "model": engine.bundle.name}
    elif operation == "stop":
        reply, stop = {"stopped": os.getpid()}, "asked to stop"
    elif archive_identity(settings) != identity:
        reply, stop = {"stale": "the archive was replaced"}, "the archive was replaced"
    elif operation == "search":
        try:
            reply = _search(engine, request)
        except Exception as error:  # a bug: the command searches in-process, where its traceback shows
            log.exception("search failed")
            reply, stop = {"failed": repr(error)}, f"a search failed: {error!r}"
    else:
        reply = {"failed": f"unknown request {operation!r}"}
    with contextlib.suppress(OSError):
        connection.sendall(json.dumps(reply).encode() + b"\n")
    return stop


def _search(engine: SearchEngine, request: dict) -> dict:
    from indexer.store.archive import ArchiveError
    from indexer.store.db.retry import DatabaseUnavailable

    try:  # the catalog rides out a database restart (up to --db-retry seconds); past that, the client gets one line
        response = run_search(engine, request)
    except (ArchiveError, DatabaseUnavailable, FileNotFoundError, ValueError) as error:
        return {"user_error": str(error)}
    return {"response": response.to_dict(), "roots": engine.roots(), "model": engine.bundle.name}


def run_search(engine: SearchEngine, request: dict) -> SearchResponse:
    """A search request (as `search` builds it, or as it arrives in JSON: dates as ISO text, kinds as a list) run
    on `engine`: the one recipe of the service and of a search in the command's own process."""
    return engine.search_batch([query_of(request)])[0]


def query_of(request: dict, image: np.ndarray | None = None) -> Query:
    """The engine's query for a search request; `image` (uint8 [H, W, 3]) stands for the request's image file."""
    from indexer.search.engine import Query, read_query_image
    from indexer.store.db import SearchFilters

    filters = dict(request.get("filters") or {})
    for key in ("modified_after", "modified_before"):
        if isinstance(filters.get(key), str):
            filters[key] = datetime.fromisoformat(filters[key])
    if filters.get("kinds") is not None:
        filters["kinds"] = tuple(filters["kinds"])
    if image is None and request.get("image") is not None:
        image = read_query_image(Path(request["image"]))
    return Query(
        image if image is not None else request["query"],
        k=request.get("k", 10),
        rerank_k=request.get("rerank_k"),
        filters=SearchFilters(**filters),
        one_per_file=bool(request.get("one_per_file")),
    )


def _read_line(connection: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while not chunks or not chunks[-1].endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the other side closed the connection mid-message")
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_MESSAGE_BYTES:
            raise ValueError(f"a message over {MAX_MESSAGE_BYTES} bytes")
    return b"".join(chunks)


# the command line's side


def ask(address: ServiceAddress, request: dict, timeout_s: float | None = None) -> dict | None:
    """The service's reply, or None when no service answers (none running, a dead one's socket, or it died)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout_s)
            connection.connect(str(address.socket_path))
            connection.sendall(json.dumps(request, default=_jsonable).encode() + b"\n")
            return json.loads(_read_line(connection))
    except (OSError, ValueError):
        return None


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def search(settings: Settings, model: str | None, request: dict, idle_minutes: float) -> dict | None:
    """Search through the archive's service, starting it when none runs. None when no service could answer: the
    caller then searches in-process. A reply holds `response`, `roots` and `model`, or `user_error`."""
    if not (settings.index_dir / "archive.json").is_file():
        return None  # nothing indexed: the command says so, no service to start
    address = ServiceAddress.of(settings, model)
    for _ in range(2):  # a second time after a service that found its archive replaced
        reply = ask(address, {"op": "search", **request}, ANSWER_TIMEOUT_S)
        if reply is None and start(address, settings, model, idle_minutes):
            reply = ask(address, {"op": "search", **request}, ANSWER_TIMEOUT_S)
        if reply is None or "failed" in reply:
            return None
        if "stale" not in reply:
            return reply
    return None


def start(
    address: ServiceAddress, settings: Settings, model: str | None, idle_minutes: float, wait_s: float = START_TIMEOUT_S
) -> bool:
    """Start the service in the background, detached from this process, and wait until it answers. False when it
    could not start (its log, `address.log_path`, says why)."""
    db_url, index_dir, model = canonical(settings, model)
    command = [sys.executable, "-m", "indexer", "service", "--idle-minutes", str(idle_minutes)]
    command += ["--db", db_url, "--index-dir", index_dir] + (["--model", model] if model else [])
    command += ["--runtime", settings.runtime.runtime]
    command += ["--precision", settings.runtime.precision] if settings.runtime.precision else []
    with open(address.log_path, "ab") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if ask(address, {"op": "ping"}, timeout_s=5) is not None:
            return True
        # Ours gave up or failed; keep waiting only while another one (started by a search beside this) loads.
        if process.poll() is not None and not _lock_held(address.log_path):
            return False
        time.sleep(0.05)
    return False


def stop(settings: Settings, model: str | None) -> int | None:
    """Stop the archive's service; its pid, or None when none ran."""
    reply = ask(ServiceAddress.of(settings, model), {"op": "stop"}, timeout_s=30)
    return None if reply is None else reply.get("stopped")


def ping(settings: Settings, model: str | None) -> dict | None:
    return ask(ServiceAddress.of(settings, model), {"op": "ping"}, timeout_s=30)
