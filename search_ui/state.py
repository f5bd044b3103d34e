"""The app's heavy objects, loaded once per server process (`st.cache_resource`) and shared by every session.

The search engine holds the model, the FAISS index and the database engine. Streamlit runs each session's script in
its own thread, so every call into the engine goes through one lock: the model, the index and the archive's reads
are not used from two threads at once (the archive may sync its index on any call while a run commits files).
"""

from __future__ import annotations

import ipaddress
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from indexer.search.engine import ArchiveStats, Library, OpenClip, Playable, RerankChoice, SearchEngine, SearchResponse
from indexer.settings import Settings, default_home, load_settings


@dataclass(frozen=True)
class AppConfig:
    settings: Settings
    reports_dir: Path
    host: str = "127.0.0.1"  # the address the app is served on
    media_roots: tuple[Path, ...] = ()  # resolved folders the Library page may index inside; () = any (loopback only)

    @property
    def indexing_refused(self) -> str | None:
        """Why the Library page offers no indexing, or None when it may (inside `media_roots` if any are set)."""
        if self.media_roots or _is_loopback(self.host):
            return None
        return (
            f"This app is served on {self.host}, beyond this machine, without media folders: anyone who reaches the "
            "page could index any folder of the server, so indexing from here is off. Restart it with "
            "`mplug2-search ui --media-root FOLDER` (or MPLUG2_SEARCH_MEDIA_ROOTS), or index with "
            "`mplug2-search index FOLDER` on the server."
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def app_config() -> AppConfig:
    """What `mplug2-search ui` put in the environment (or the defaults of the command line)."""
    settings = load_settings()
    reports = Path(os.environ.get("MPLUG2_SEARCH_REPORTS") or default_home() / "reports").expanduser()
    roots = os.environ.get("MPLUG2_SEARCH_MEDIA_ROOTS", "")
    media_roots = tuple(Path(root).expanduser().resolve() for root in roots.split(os.pathsep) if root.strip())
    return AppConfig(settings, reports, os.environ.get("MPLUG2_SEARCH_HOST", "127.0.0.1"), media_roots)


class SharedEngine:
    """A search engine behind a lock: the app's one way to it."""

    def __init__(self, engine: SearchEngine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self._engine.bundle.name  # fixed for the engine's life: no lock needed

    @property
    def rerank_choice(self) -> RerankChoice:
        return self._engine.rerank_choice  # read from the model folder once: no lock needed

    def search(self, *args, **kwargs) -> SearchResponse:
        with self._lock:
            return self._engine.search(*args, **kwargs)

    def thumbnail(self, clip_id: int) -> bytes | None:
        with self._lock:
            return self._engine.thumbnail(clip_id)

    def open_clip(self, raw_clip_id: object) -> OpenClip:
        with self._lock:
            return self._engine.open_clip(raw_clip_id)

    def playable(self, clip: OpenClip, preview_dir: Path) -> Playable:
        with self._lock:  # a first preview runs ffmpeg under the lock: one conversion at a time
            return self._engine.playable(clip, preview_dir)

    def roots(self) -> list[str]:
        with self._lock:
            return self._engine.roots()


@st.cache_resource(show_spinner="Loading the model and the index…")
def shared_engine(settings: Settings) -> SharedEngine:
    """Raises ArchiveError while nothing is indexed (not cached: the next call tries again)."""
    return SharedEngine(SearchEngine.open(settings, settings.model))


class SharedLibrary:
    """The archive's contents without a model (the library page), behind a lock."""

    def __init__(self, library: Library) -> None:
        self._library = library
        self._lock = threading.Lock()

    def stats(self) -> ArchiveStats:
        with self._lock:
            return self._library.stats()


@st.cache_resource
def shared_library(settings: Settings) -> SharedLibrary:
    return SharedLibrary(Library(settings))
