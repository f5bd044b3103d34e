"""Fast runtimes for the model's inference paths (video, image and text encoders, the ITM head).

`make_runner(model, runtime, precision, ...)` returns what serves the calls MPLUG2Retrieval answers: the model itself
(torch) or an OpenVinoRunner (fp32, or int8 quantised post-training with NNCF on real clips). `auto` picks by what
was measured on CPUs: torch for fp32 (OpenVINO fp32 was 0.92-1.21x torch per path at mplug2-base, ONNX Runtime
slower) and on a GPU, OpenVINO for int8 (3.2-3.8x torch fp32 per path at mplug2-base: benchmarks/model.py
--runtimes). A runtime that cannot serve (not installed, an export that fails, a CPU it does not support, an int8
graph that drifts too far) gives a one-line warning and torch fp32 instead: `RunnerChoice` says what actually runs,
so an archive records the truth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mplug2.runtime.calibration import Calibration
from mplug2.runtime.errors import RuntimeUnavailable

log = logging.getLogger(__name__)
RUNTIMES = ("auto", "torch", "openvino")
PRECISIONS = ("fp32", "int8")
__all__ = ["PRECISIONS", "RUNTIMES", "Calibration", "RunnerChoice", "RuntimeUnavailable", "make_runner", "resolve"]


@dataclass
class RunnerChoice:
    runner: Any  # MPLUG2Retrieval or OpenVinoRunner: both answer encode_video/encode_image/encode_text/itm_logits
    runtime: str  # what runs: torch | openvino
    precision: str  # fp32 | int8
    fallback: str | None = None  # why the runtime asked for is not the one running, when it is not


def resolve(runtime: str, precision: str, device_type: str = "cpu") -> str:
    """The concrete runtime `auto` stands for (see the module docstring); others unchanged."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if runtime != "auto":
        return runtime
    return "openvino" if precision == "int8" and device_type == "cpu" else "torch"


def make_runner(
    model: Any,
    runtime: str = "auto",
    precision: str = "fp32",
    *,
    device_type: str = "cpu",
    cache_root: Path | None = None,
    calibration: Callable[[], Calibration | None] | None = None,
    prepare: Iterable[str] = (),
    progress: bool = True,
    label: str = "",
) -> RunnerChoice:
    """What serves `model` at `runtime`/`precision`; the graphs in `prepare` are exported/loaded now, so a failure
    falls back before anything is encoded (other paths load on first use)."""
    concrete = resolve(runtime, precision, device_type)
    try:
        if concrete == "torch":
            if precision == "int8":
                raise RuntimeUnavailable("torch has no int8 path here: use --runtime openvino for int8")
            return RunnerChoice(model, "torch", "fp32")
        if device_type != "cpu":
            raise RuntimeUnavailable(f"OpenVINO runs the model on the CPU only, not on {device_type}")
        from mplug2.runtime.cache import default_cache_root
        from mplug2.runtime.openvino_runner import OpenVinoRunner

        runner = OpenVinoRunner(model, precision, cache_root or default_cache_root(), calibration, progress, label)
        runner.prepare(prepare)
        return RunnerChoice(runner, "openvino", precision)
    except RuntimeUnavailable as error:
        log.warning("%s; running torch fp32 instead", error)
        return RunnerChoice(model, "torch", "fp32", fallback=str(error))
