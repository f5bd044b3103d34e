"""The app's heavy objects, loaded once per server process (`st.cache_resource`) and shared by every session.

The search engine holds the model, the FAISS index and the database engine. Streamlit runs each session's script in
its own thread, so searches go through one lock: the model and the index are not used from two threads at once.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from indexer.archive import Archive
from indexer.engine import SearchEngine
from indexer.settings import Settings, default_home, load_settings


@dataclass(frozen=True)
class AppConfig:
    settings: Settings
    reports_dir: Path


def app_config() -> AppConfig:
    """What `mplug2-search ui` put in the environment (or the defaults of the command line)."""
    settings = load_settings()
    reports = Path(os.environ.get("MPLUG2_SEARCH_REPORTS") or default_home() / "reports").expanduser()
    return AppConfig(settings, reports)


class SharedEngine:
    """A search engine behind a lock."""

    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine
        self.lock = threading.Lock()

    def search(self, *args, **kwargs):
        with self.lock:
            return self.engine.search(*args, **kwargs)

    def thumbnail(self, clip_id: int) -> bytes | None:
        with self.lock:
            return self.engine.thumbnail(clip_id)


@st.cache_resource(show_spinner="Loading the model and the index…")
def shared_engine(settings: Settings) -> SharedEngine:
    """Raises ArchiveError while nothing is indexed (not cached: the next call tries again)."""
    return SharedEngine(SearchEngine.open(settings, settings.model))


@st.cache_resource
def shared_archive(settings: Settings) -> Archive:
    """The catalog and feature store, for the library page: opened without the model."""
    return Archive(settings)
