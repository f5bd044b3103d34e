"""Where mplug2-search keeps its state, and the environment variables that move it.

Everything lives under one home folder (`$MPLUG2_SEARCH_HOME`, default `~/.mplug2-search`): the SQLite catalog,
the feature store and the FAISS index. `MPLUG2_SEARCH_DB` points the catalog at any SQLAlchemy URL instead
(e.g. PostgreSQL); `MPLUG2_SEARCH_MODEL` names the model used when a command is given none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    index_dir: Path
    model: str | None

    @property
    def features_dir(self) -> Path:
        return self.index_dir / "features"


def default_home() -> Path:
    return Path(os.environ.get("MPLUG2_SEARCH_HOME", Path.home() / ".mplug2-search")).expanduser()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def sqlite_path(db_url: str) -> Path | None:
    """The file of a `sqlite:///PATH` URL (as given: maybe relative), or None for any other database."""
    return Path(db_url.removeprefix("sqlite:///")) if db_url.startswith("sqlite:///") else None


def load_settings(db_url: str | None = None, index_dir: str | Path | None = None, model: str | None = None) -> Settings:
    """Settings from explicit values, then environment variables, then defaults under the home folder."""
    home = default_home()
    index = Path(index_dir or os.environ.get("MPLUG2_SEARCH_INDEX_DIR") or home / "index").expanduser()
    url = db_url or os.environ.get("MPLUG2_SEARCH_DB") or sqlite_url(home / "catalog.sqlite")
    return Settings(home=home, db_url=url, index_dir=index, model=model or os.environ.get("MPLUG2_SEARCH_MODEL"))


def default_model_dir() -> Path:
    """The model bundled with the project, used when no model is named."""
    return REPO_ROOT / "data" / "models" / "mplug2-synth"


REAL_MODEL_COMMAND = "mplug2-search fetch-checkpoint mplug2-large-pretrain"


def is_bundled_model(name: str | Path | None) -> bool:
    """Whether `name` (a model name or folder, as an archive records it) is the bundled synthetic-shapes model."""
    if not name:
        return False
    if str(name) == "mplug2-synth":
        return True
    return Path(name).expanduser().resolve() == default_model_dir().resolve()


def bundled_model_note() -> str:
    """What to tell someone searching with the bundled model, where they look (CLI output, the app)."""
    return (
        "the bundled model mplug2-synth knows only the demo's synthetic shapes: photos and real videos get "
        f"near-random results. For a real model: `{REAL_MODEL_COMMAND}`, then index with --model "
        "mplug2-large-pretrain into a new --index-dir"
    )
