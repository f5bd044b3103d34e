"""ModelBundle: the model with its tokenizer and preprocessing, the one object search and evaluation talk to.

Callers hand in captions and uint8 frames; tokenisation, caption normalisation, resizing and normalisation happen
here, from the model's own config. Inference runs under `torch.inference_mode()`, in bf16 autocast on a GPU and
float32 on the CPU (bf16 is several times slower than float32 on CPUs without native support), or through a fast
runtime (`runtime`/`precision`, see mplug2.runtime): `runner` is what answers the encode and ITM calls.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mplug2.config import MPLUG2Config
from mplug2.factory import create_model, resolve_folder, vocab_for
from mplug2.folder import WEIGHTS, model_fingerprint
from mplug2.model import MPLUG2Retrieval, TextOutput, VisualOutput
from mplug2.pretrained import BERT_VOCAB
from mplug2.runtime import Calibration, make_runner
from mplug2.runtime.offered import withheld
from mplug2.tokenizer import Tokenizer, bert_vocab_prefix
from mplug2.transforms import to_model_input

log = logging.getLogger(__name__)


@dataclass
class ModelBundle:
    model: MPLUG2Retrieval
    tokenizer: Tokenizer
    device: torch.device
    autocast_dtype: torch.dtype | None
    name: str
    # [path, size, mtime_ns] of the weights file the model was read from (None for anything else): lets an archive
    # that recorded the same stamp skip re-computing the fingerprint, a pass over every weight, when it opens.
    weights_stamp: list | None = None
    runtime: str = "torch"  # what answers the encode and ITM calls: torch | openvino
    precision: str = "fp32"  # fp32 | int8
    runner: Any = field(default=None, repr=False)  # the model itself (torch) or a fast runtime's runner

    def __post_init__(self) -> None:
        if self.runner is None:
            self.runner = self.model

    @property
    def config(self) -> MPLUG2Config:
        return self.model.config

    @property
    def folder(self) -> Path | None:
        """The model folder the weights were read from (None for a model built any other way)."""
        return Path(self.weights_stamp[0]).parent if self.weights_stamp else None

    @property
    def with_fusion(self) -> bool:
        return self.model.with_fusion

    @functools.cached_property
    def fingerprint(self) -> str:
        """Which weights these are (the fusion tower aside, which changes no vector)."""
        return model_fingerprint(self.model)

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        with torch.inference_mode():
            if self.autocast_dtype is None:
                yield
            else:
                with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                    yield

    def tokenize(self, texts: Sequence[str], kind: str = "video") -> tuple[torch.Tensor, torch.Tensor]:
        preprocess = self.config.preprocess
        length = preprocess.text_max_length_video if kind == "video" else preprocess.text_max_length_image
        ids, mask = self.tokenizer(texts, length)
        return ids.to(self.device), mask.to(self.device)

    def encode_texts(self, texts: Sequence[str], kind: str = "video") -> TextOutput:
        """Captions or queries → tokens, mask and ITC vectors; `kind` picks the max length (official: video 35,
        image 30)."""
        ids, mask = self.tokenize(texts, kind)
        with self._inference():
            output = self.runner.encode_text(ids, mask)
        return TextOutput(output.tokens.float(), output.mask, output.feat.float())

    def encode_videos(self, frames: np.ndarray | torch.Tensor) -> VisualOutput:
        """uint8 clips [B, T, H, W, 3] (any size; resized here if needed) → visual tokens and ITC vectors."""
        video = to_model_input(frames, self.config, kind="video").to(self.device)  # [B, T, 3, S, S]
        with self._inference():
            output = self.runner.encode_video(video)
        return VisualOutput(output.tokens.float(), output.feat.float())

    def encode_images(self, images: np.ndarray | torch.Tensor) -> VisualOutput:
        """uint8 images [B, H, W, 3] → visual tokens and ITC vectors (one-frame videos)."""
        pixels = to_model_input(images, self.config, kind="image").to(self.device)  # [B, 3, S, S]
        with self._inference():
            output = self.runner.encode_image(pixels)
        return VisualOutput(output.tokens.float(), output.feat.float())

    def itm_pair_logits(self, text: TextOutput, visual_tokens: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Aligned pairs (text row i, visual tokens i) → ITM logits [N, 2] (no-match, match), float32."""
        logits = []
        with self._inference():
            for start in range(0, len(visual_tokens), batch_size):
                rows = slice(start, start + batch_size)
                pair_logits = self.runner.itm_logits(
                    text.tokens[rows].to(self.device),
                    text.mask[rows].to(self.device),
                    visual_tokens[rows].to(self.device),
                )
                logits.append(pair_logits.float())
        return torch.cat(logits) if logits else torch.empty(0, 2)

    def itm_match_logits(self, text: TextOutput, visual_tokens: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """The "match" logits [N] (index 1 of itm_head) of aligned pairs."""
        return self.itm_pair_logits(text, visual_tokens, batch_size)[:, 1]

    def calibration(self, clips: np.ndarray, captions: Sequence[str]) -> Calibration:
        """uint8 clips [N, T, H, W, 3] and their captions → the runtime's int8 calibration inputs."""
        videos = to_model_input(clips, self.config, kind="video")
        images = to_model_input(clips[:, 0], self.config, kind="image")
        ids, mask = self.tokenizer(list(captions), self.config.preprocess.text_max_length_video)
        return Calibration(videos, images, ids, mask)

    def use_runtime(
        self,
        runtime: str,
        precision: str,
        cache_root: Path | None = None,
        calibration: Callable[[], tuple[np.ndarray, Sequence[str]] | None] | None = None,
        prepare: Sequence[str] = (),
    ) -> str | None:
        """Serve the encode and ITM calls through `runtime` at `precision` (`calibration` gives real clips and
        captions for int8, called only when an int8 graph is exported). Returns why it fell back to torch, if it
        did; `runtime` and `precision` then say what runs."""

        refusal = withheld(self.folder).get(precision)
        if refusal is not None:
            log.warning("%s does not offer %s: %s; running torch fp32 instead", self.name, precision, refusal)
            self.runner, self.runtime, self.precision = self.model, "torch", "fp32"
            return f"{self.name} does not offer {precision}: {refusal}"

        def inputs() -> Calibration | None:
            material = calibration() if calibration is not None else None
            return None if material is None else self.calibration(*material)

        choice = make_runner(
            self.model,
            runtime,
            precision,
            device_type=self.device.type,
            cache_root=cache_root,
            calibration=inputs,
            prepare=prepare,
            label=self.name,
        )
        self.runner, self.runtime, self.precision = choice.runner, choice.runtime, choice.precision
        return choice.fallback

    @property
    def temperature(self) -> float:
        """The learnt ITC temperature τ: cosine / τ is the logit the model was trained with."""
        return float(self.model.temp.detach())


def load_model_bundle(
    name_or_dir: str | Path,
    device: str | torch.device | None = None,
    with_fusion: bool = True,
    autocast: str = "auto",
    vocab_file: str | Path | None = None,
    pretrained: str | Path | None = None,
) -> ModelBundle:
    """Model + tokenizer + preprocessing, served by torch (`use_runtime` picks another). `autocast`: auto (bf16
    autocast on GPU, float32 on CPU), fp32, bf16, fp16."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = create_model(name_or_dir, pretrained, with_fusion=with_fusion, device=device)
    vocab: str | Path | list[str] | None = (
        vocab_file or vocab_for(name_or_dir) or (vocab_for(pretrained) if pretrained else None)
    )
    if vocab is None and resolve_folder(name_or_dir) is None and pretrained is None:
        # An architecture with random weights and a vocabulary smaller than BERT's: any vocabulary that fits will
        # do, so the most frequent BERT words stand in (indexing and search run; the rankings mean nothing).
        vocab = bert_vocab_prefix(BERT_VOCAB, model.config.text.vocab_size)
    if vocab is None:
        raise FileNotFoundError(
            f"{name_or_dir} has no vocab.txt: copy the vocabulary it was trained with into the model folder"
        )
    tokenizer = Tokenizer(vocab, max_words=model.config.preprocess.max_words)
    if tokenizer.vocab_size > model.config.text.vocab_size:
        raise ValueError(
            f"{tokenizer.vocab_file} has {tokenizer.vocab_size} tokens; the model's embedding has only "
            f"{model.config.text.vocab_size}"
        )
    autocast_dtype = {
        "auto": torch.bfloat16 if device.type == "cuda" else None,
        "fp32": None,
        "bf16": torch.bfloat16,
        "fp16": torch.float16,
    }[autocast]
    # A folder is remembered by its absolute path: an archive records it and may be searched from anywhere.
    name = str(Path(name_or_dir).resolve()) if Path(name_or_dir).is_dir() else str(name_or_dir)
    folder = resolve_folder(name_or_dir) if pretrained is None else None
    return ModelBundle(
        model, tokenizer, device, autocast_dtype, name=name, weights_stamp=folder and weights_stamp(folder)
    )


def weights_stamp(folder: Path) -> list:
    """What identifies a model folder's weights file cheaply: its resolved path, size and modification time."""
    path = (Path(folder) / WEIGHTS).resolve()
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]
