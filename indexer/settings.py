"""Where mplug2-search keeps its state, and the environment variables that move it.

Everything lives under one home folder (`$MPLUG2_SEARCH_HOME`, default `~/.mplug2-search`): the SQLite catalog,
the feature store and the FAISS index. `MPLUG2_SEARCH_DB` points the catalog at any SQLAlchemy URL instead
(e.g. PostgreSQL); `MPLUG2_SEARCH_MODEL` names the model used when a command is given none;
`MPLUG2_SEARCH_DB_RETRY` how many seconds a command rides out a database that went away (default `DB_RETRY_S`).
`MPLUG2_SEARCH_RUNTIME` and `MPLUG2_SEARCH_PRECISION` the runtime that serves it (see RuntimeOptions).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DB_RETRY_S = 60.0  # how long a command waits for a database that went away (a server restart) before it gives up


@dataclass(frozen=True)
class RuntimeOptions:
    """Which runtime and precision serve the model (`--runtime`, `--precision` on index, eval, search, serve and the
    app; declared here once). `auto` and None follow the archive: what it was built with (torch fp32 for an archive
    from before runtimes were recorded); for a new archive auto is mplug2.runtime's pick and precision fp32."""

    runtime: str = "auto"  # auto | torch | openvino
    precision: str | None = None  # fp32 | int8; None: the archive's

    def for_archive(self, recorded: tuple[str, str] | None) -> tuple[str, str]:
        """(runtime, precision) to ask mplug2.runtime for, given what the archive recorded (None: a new one)."""
        precision = self.precision or (recorded[1] if recorded else "fp32")
        if self.runtime != "auto":
            return self.runtime, precision
        if recorded and recorded[1] == precision:
            return recorded[0], precision
        return "auto", precision


RUNTIME_CHOICES = ("auto", "torch", "openvino")
PRECISION_CHOICES = ("fp32", "int8")


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    index_dir: Path
    model: str | None
    db_retry_s: float = DB_RETRY_S
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)

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


def load_settings(
    db_url: str | None = None,
    index_dir: str | Path | None = None,
    model: str | None = None,
    db_retry_s: float | None = None,
    runtime: RuntimeOptions | None = None,
) -> Settings:
    """Settings from explicit values, then environment variables, then defaults under the home folder."""
    home = default_home()
    index = Path(index_dir or os.environ.get("MPLUG2_SEARCH_INDEX_DIR") or home / "index").expanduser()
    url = db_url or os.environ.get("MPLUG2_SEARCH_DB") or sqlite_url(home / "catalog.sqlite")
    retry = db_retry_s if db_retry_s is not None else float(os.environ.get("MPLUG2_SEARCH_DB_RETRY") or DB_RETRY_S)
    runtime = runtime or RuntimeOptions(
        os.environ.get("MPLUG2_SEARCH_RUNTIME") or "auto", os.environ.get("MPLUG2_SEARCH_PRECISION") or None
    )
    model = model or os.environ.get("MPLUG2_SEARCH_MODEL")
    return Settings(home=home, db_url=url, index_dir=index, model=model, db_retry_s=retry, runtime=runtime)


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
