"""Which model and runtime an archive's vectors come from, as `archive.json` records them: the refusals that keep
vectors that do not compare out of one archive, each saying what to do instead. `Archive.bind_model` (an index
run) and `Archive.check_model` (a search) raise them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from indexer.settings import Settings
from indexer.store.errors import ArchiveError

if TYPE_CHECKING:
    from mplug2.bundle import ModelBundle


def nothing_indexed(index_dir: Path) -> ArchiveError:
    return ArchiveError(
        f"nothing has been indexed into {index_dir} yet: run `mplug2-search index PATH`, or give --index-dir the "
        "folder an earlier run indexed into"
    )


def other_model(meta: dict, bundle: ModelBundle) -> ArchiveError | None:
    """Refusal for an index run whose model makes other vectors than the archive's (None when they are the same)."""
    recorded, name, fingerprint = meta.get("model_fingerprint"), bundle.name, bundle.fingerprint
    if recorded is None or recorded == fingerprint:
        return None
    if meta.get("model") == name:
        # The same folder with other weights (an upgrade of the bundled model, a retrained model): naming the folder
        # again cannot help, so say what can.
        return ArchiveError(
            f"this archive was indexed with the weights {recorded} of model {name}, which now holds other "
            f"weights ({fingerprint}: an upgrade or a retrained model), and their vectors do not compare. "
            "Index into a new archive (a new MPLUG2_SEARCH_HOME, or a new --db and --index-dir; for the demo, "
            "delete its folder) to re-embed everything with the new weights, or put the old weights back."
        )
    return ArchiveError(
        f"this archive was indexed with model {meta.get('model')} ({recorded}); {name} ({fingerprint}) "
        f"makes different vectors. Use --model {meta.get('model')}, or index into a new archive (a new "
        "MPLUG2_SEARCH_HOME, or a new --db and --index-dir) to re-embed everything with the new model."
    )


def catalog_without_its_index(settings: Settings) -> ArchiveError:
    """A catalog that lists indexed files, met with an index folder that holds no archive: a new or deleted
    --index-dir, or one on a disk not mounted. Encoding every file again there is rarely what was meant, and would
    leave two archives sharing one catalog."""
    return ArchiveError(
        f"the catalog {settings.db_url} lists indexed files, but {settings.index_dir} holds no archive of them (a "
        "new or deleted --index-dir, or a disk not mounted?). Give --index-dir the folder they were indexed into, "
        "or a new --db too to index everything afresh."
    )


def other_runtime(runtime: tuple[str, str] | None, bundle: ModelBundle) -> ArchiveError | None:
    """Refusal for an index run encoding with another runtime or precision than the archive's vectors were."""
    if runtime is None or runtime == (bundle.runtime, bundle.precision):
        return None
    return ArchiveError(
        f"this archive was encoded with {runtime[0]} {runtime[1]}, not {bundle.runtime} {bundle.precision}: "
        f"mixed precisions make vectors that do not compare. Use --runtime {runtime[0]} --precision "
        f"{runtime[1]}, or index into a new --index-dir to re-encode everything."
    )


def searched_with_other_model(meta: dict, bundle: ModelBundle) -> ArchiveError:
    return ArchiveError(
        f"the archive was indexed with {meta['model']}, not {bundle.name}: search it with --model {meta['model']}"
    )
