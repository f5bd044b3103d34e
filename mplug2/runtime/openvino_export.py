"""Export one inference path to OpenVINO: trace the torch graph, quantise it with NNCF when int8 is asked for
(calibrated on real clips), measure its drift from torch on held-out inputs, and store it in the export cache."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mplug2.model import MPLUG2Retrieval
from mplug2.runtime.cache import ExportCache
from mplug2.runtime.calibration import Calibration, graph_samples, split
from mplug2.runtime.errors import RuntimeUnavailable
from mplug2.runtime.graphs import dynamic_shapes, example_inputs, graph_module

log = logging.getLogger(__name__)
MIN_INT8_COSINE = 0.99  # below this on held-out clips an int8 graph is refused (torch serves instead)
GRAPH_WORDS = {"video": "video encoder", "image": "image encoder", "text": "text encoder", "itm": "ITM head"}
COMPILE_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}  # never bf16 behind our back: int8 is the only reduced path


def _numpy(sample: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    return [tensor.detach().cpu().numpy() for tensor in sample]


def _outputs(module: torch.nn.Module, sample: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    with torch.inference_mode():
        out = module(*sample)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def measure_drift(module: torch.nn.Module, compiled: Any, samples: list[tuple[torch.Tensor, ...]]) -> dict:
    """Cosine to torch of the graph's last output (the ITC vector, or the ITM logits) and the largest absolute
    difference of any output element, over `samples`."""
    cosines, worst = [], 0.0
    for sample in samples:
        reference = _outputs(module, sample)
        result = compiled(_numpy(sample))
        got = [np.asarray(result[compiled.output(i)]) for i in range(len(reference))]
        cosines.extend(_cosine(reference[-1], got[-1]).tolist())
        worst = max(worst, *(float(np.abs(r - g).max()) for r, g in zip(reference, got, strict=True)))
    return {"cosine_min": min(cosines), "cosine_mean": float(np.mean(cosines)), "max_abs_diff": worst}


def _convert(ov: Any, model: MPLUG2Retrieval, graph: str) -> Any:
    module = graph_module(model, graph)
    examples = example_inputs(model, graph)
    shapes = [
        ov.PartialShape([-1 if dyn == -1 else size for size, dyn in zip(example.shape, dynamic, strict=True)])
        for example, dynamic in zip(examples, dynamic_shapes(graph), strict=True)
    ]
    types = [ov.Type.i64 if example.dtype == torch.long else ov.Type.f32 for example in examples]
    # The tracer warns about shapes it takes as constants (image size, frames per clip): the export fixes those on
    # purpose, so the warnings would only alarm the user.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ov.convert_model(module, example_input=examples, input=list(zip(shapes, types, strict=True)))


def _quantize(ov_model: Any, samples: list[tuple[torch.Tensor, ...]]) -> Any:
    try:
        import nncf
    except ImportError as error:
        raise RuntimeUnavailable("int8 needs NNCF: pip install nncf (the cpu extra pins it)") from error
    dataset = nncf.Dataset(samples, _numpy)
    return nncf.quantize(ov_model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples))


def export_graph(
    ov: Any,
    core: Any,
    model: MPLUG2Retrieval,
    graph: str,
    precision: str,
    cache: ExportCache,
    header: dict,
    calibration: Calibration | None,
    progress: bool = True,
) -> None:
    """Build `graph` at `precision`, validate it, and commit it to `cache` (or raise RuntimeUnavailable)."""
    if precision == "int8" and calibration is None:
        raise RuntimeUnavailable("int8 needs calibration clips (the archive's first clips or the demo media)")
    started = time.perf_counter()
    if progress:
        print(
            f"exporting the {GRAPH_WORDS[graph]} to OpenVINO {precision} (once for these weights; a minute or more "
            "at base size)...",
            file=sys.stderr,
            flush=True,
        )
    module = graph_module(model, graph)
    if calibration is not None:
        fit, held_out = split(graph_samples(model, calibration, graph))
        validated_on = "held-out calibration clips"
    else:
        fit, held_out = [], [example_inputs(model, graph)]
        validated_on = "random inputs"
    try:
        ov_model = _convert(ov, model, graph)
        if precision == "int8":
            ov_model = _quantize(ov_model, fit)
        drift = measure_drift(module, core.compile_model(ov_model, "CPU", COMPILE_CONFIG), held_out)
        cache.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache.folder) as tmp:
            ov.save_model(ov_model, str(Path(tmp) / f"{graph}.xml"), compress_to_fp16=False)
            files = {name: (Path(tmp) / name).read_bytes() for name in (f"{graph}.xml", f"{graph}.bin")}
    except RuntimeUnavailable:
        raise
    except Exception as error:  # the runtime's tracer and quantiser raise many kinds; each means "cannot export"
        reason = f"{type(error).__name__}: {error}".splitlines()[0]  # the warning stays one line
        raise RuntimeUnavailable(f"exporting the {GRAPH_WORDS[graph]} failed: {reason}") from error
    if precision == "int8" and drift["cosine_min"] < MIN_INT8_COSINE:
        raise RuntimeUnavailable(
            f"int8 {GRAPH_WORDS[graph]} drifts too far from torch (cosine {drift['cosine_min']:.4f} < "
            f"{MIN_INT8_COSINE} on {validated_on})"
        )
    seconds = time.perf_counter() - started
    entry = dict(drift, validated_on=validated_on, calibration_items=len(fit), export_s=round(seconds, 1))
    cache.commit(graph, files, entry, header)
    if progress:
        print(
            f"exported the {GRAPH_WORDS[graph]} in {seconds:.0f} s (cosine to torch {drift['cosine_min']:.5f})",
            file=sys.stderr,
            flush=True,
        )
