"""Serving a model bundle through the runtime and precision an archive calls for: the archive's recorded pair (or
the one asked for), the export cache under the home, and int8 calibration clips drawn as the demo's media are."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from indexer.settings import RuntimeOptions
from mplug2.bundle import ModelBundle

CACHE_DIR = "runtime-cache"


def demo_calibration(num_frames: int):
    """The int8 calibration material, built only if an int8 graph has to be exported."""

    def material():
        from indexer.synthetic.calibration import calibration_clips

        return calibration_clips(num_frames)

    return material


def serve(
    bundle: ModelBundle,
    options: RuntimeOptions,
    recorded: tuple[str, str] | None,
    home: Path,
    prepare: Sequence[str] = (),
) -> str | None:
    """Switch `bundle` to the runtime `options` resolve to against the archive's `recorded` pair; the graphs in
    `prepare` are exported or loaded now. Returns why it fell back to torch fp32, if it did (already logged)."""
    runtime, precision = options.for_archive(recorded)
    if (runtime, precision) == (bundle.runtime, bundle.precision):
        return None
    return bundle.use_runtime(
        runtime,
        precision,
        cache_root=Path(home) / CACHE_DIR,
        calibration=demo_calibration(bundle.config.preprocess.num_frames),
        prepare=prepare,
    )
