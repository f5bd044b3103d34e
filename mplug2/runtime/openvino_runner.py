"""OpenVinoRunner: the model's inference paths compiled by OpenVINO, each exported once and then read from the
export cache. It answers the same calls as MPLUG2Retrieval (encode_video, encode_image, encode_text, itm_logits),
so ModelBundle uses either without knowing which."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mplug2.model import MPLUG2Retrieval, TextOutput, VisualOutput
from mplug2.runtime.cache import ExportCache, cache_key, weights_digest
from mplug2.runtime.calibration import Calibration
from mplug2.runtime.errors import RuntimeUnavailable
from mplug2.runtime.openvino_export import COMPILE_CONFIG, export_graph

log = logging.getLogger(__name__)


def import_openvino() -> tuple[Any, Any]:
    """(the openvino module, a Core), or RuntimeUnavailable when it is missing or this CPU cannot run it."""
    try:
        import openvino as ov
    except ImportError as error:
        raise RuntimeUnavailable("OpenVINO is not installed: pip install openvino (the cpu extra pins it)") from error
    core = ov.Core()
    if "CPU" not in core.available_devices:
        raise RuntimeUnavailable("OpenVINO's CPU plugin does not run on this CPU (it needs at least SSE4.2)")
    return ov, core


class OpenVinoRunner:
    """Compiled graphs, loaded (or exported) on first use of each path. `calibration` is called once, only when an
    int8 graph must be exported."""

    name = "openvino"

    def __init__(
        self,
        model: MPLUG2Retrieval,
        precision: str,
        cache_root: Path,
        calibration: Callable[[], Calibration | None] | None = None,
        progress: bool = True,
        label: str = "",
    ) -> None:
        if precision not in ("fp32", "int8"):
            raise ValueError(f"precision {precision!r}: use fp32 or int8")
        self.ov, self.core = import_openvino()
        if precision == "int8" and "INT8" not in self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise RuntimeUnavailable("this CPU has no int8 support in OpenVINO: use --precision fp32")
        self.model = model
        self.config = model.config
        self.with_fusion = model.with_fusion
        self.precision = precision
        self.version = self.ov.get_version()
        self.weights = weights_digest(model)
        key = cache_key(self.weights, self.name, precision, self.version)
        self.cache = ExportCache(Path(cache_root) / key)
        self.header = {"weights": self.weights, "runtime": self.name, "precision": precision, "version": self.version}
        self.header["model"] = label or self.weights
        self._calibration = calibration
        self._calibration_data: Calibration | None = None
        self.progress = progress
        self._compiled: dict[str, Any] = {}
        self.torch_paths: dict[str, str] = {}  # graph -> why torch serves it (an export that failed after start)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def prepare(self, graphs: Iterable[str]) -> None:
        """Load (exporting first if needed) each of `graphs`; RuntimeUnavailable if any cannot be."""
        for graph in graphs:
            self._graph(graph)

    def _calibration_inputs(self) -> Calibration | None:
        if self._calibration_data is None and self._calibration is not None:
            self._calibration_data = self._calibration()
        return self._calibration_data

    def _graph(self, graph: str) -> Any:
        with self._guard:
            if graph not in self._compiled:
                files = self.cache.valid_files(graph)
                if files is None:
                    calibration = self._calibration_inputs() if self.precision == "int8" else None
                    export_graph(
                        self.ov,
                        self.core,
                        self.model,
                        graph,
                        self.precision,
                        self.cache,
                        self.header,
                        calibration,
                        self.progress,
                    )
                    files = self.cache.valid_files(graph)
                    if files is None:
                        raise RuntimeUnavailable(f"the export cache at {self.cache.folder} cannot be written or read")
                xml = next(path for path in files if path.suffix == ".xml")
                self._compiled[graph] = self.core.compile_model(self.core.read_model(str(xml)), "CPU", COMPILE_CONFIG)
                self._locks[graph] = threading.Lock()
            return self._compiled[graph]

    def _run(self, graph: str, *inputs: torch.Tensor) -> list[torch.Tensor] | None:
        """The graph's outputs, or None when torch must serve this path (its export failed: said once)."""
        if graph in self.torch_paths:
            return None
        try:
            compiled = self._graph(graph)
        except RuntimeUnavailable as error:
            log.warning("%s; torch serves that path", error)
            self.torch_paths[graph] = str(error)
            return None
        arrays = [tensor.detach().cpu().numpy() for tensor in inputs]
        with self._locks[graph]:  # one infer request per compiled graph: calls from threads take turns
            result = compiled(arrays)
            return [torch.from_numpy(np.array(result[output])) for output in compiled.outputs]

    def drift(self) -> dict:
        """The cache record's drift figures per exported graph."""
        return {graph: entry for graph, entry in self.cache.read_record()["graphs"].items()}

    # the calls MPLUG2Retrieval answers

    def encode_video(self, video: torch.Tensor) -> VisualOutput:
        # the graph has the config's frames per clip; another count (eval --frames) runs on torch
        same_frames = video.shape[1] == self.config.preprocess.num_frames
        outputs = self._run("video", video.float()) if same_frames else None
        if outputs is None:
            return self.model.encode_video(video)
        return VisualOutput(outputs[0], F.normalize(outputs[1], dim=-1))

    def encode_image(self, images: torch.Tensor) -> VisualOutput:
        outputs = self._run("image", images.float())
        if outputs is None:
            return self.model.encode_image(images)
        return VisualOutput(outputs[0], F.normalize(outputs[1], dim=-1))

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextOutput:
        outputs = self._run("text", input_ids.long(), attention_mask.long())
        if outputs is None:
            return self.model.encode_text(input_ids, attention_mask)
        return TextOutput(outputs[0], attention_mask, F.normalize(outputs[1], dim=-1))

    def itm_logits(
        self, text_tokens: torch.Tensor, text_mask: torch.Tensor, visual_tokens: torch.Tensor, visual_mask=None
    ) -> torch.Tensor:
        if not self.with_fusion:
            raise RuntimeError("this model was built without the fusion encoder (with_fusion=False): no ITM scores")
        if visual_mask is not None:
            raise ValueError("the exported ITM head takes unpadded visual tokens (no visual mask)")
        outputs = self._run("itm", text_tokens.float(), text_mask.long(), visual_tokens.float())
        if outputs is None:
            return self.model.itm_logits(text_tokens, text_mask, visual_tokens)
        return outputs[0]
