"""Model configuration: typed dataclasses read from one JSON file per architecture (`model_configs/*.json`).

Architecture only. Training settings never live here; preprocessing does, because the model was trained with it
and nothing downstream may guess it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


STEMS = ("patch", "conv", "patch+conv")


@dataclass(frozen=True)
class VisionConfig:
    """The CLIP ViT behind the video encoder (VideoFormer)."""

    width: int = 1024
    layers: int = 24
    heads: int = 16
    patch_size: int = 14
    image_size: int = 224
    # How frames become patch tokens. "patch": the official (1, p, p) patch kernel, the only stem of every released
    # model. "conv": log2(p) stride-2 3x3 convolutions, then a 1x1 projection to `width` (an early-convolution stem,
    # Xiao et al. 2021): not part of mPLUG-2. For small towers trained from random weights, which otherwise learn
    # shape very slowly: on rendered shape frames with shape labels, the patch tower of mplug2-small at 96 px was at
    # 0.37 after 1000 steps, the same tower with this stem at 0.83 (and 0.66 against 0.18 on decoded test videos).
    # "patch+conv": both, summed, the convolutions' projection starting at zero, so a trained patch model gains the
    # stem without a change to what it computes (`mplug2.factory.with_conv_branch`).
    stem: str = "patch"

    def __post_init__(self) -> None:
        if self.stem not in STEMS:
            raise ValueError(f"unknown vision stem {self.stem!r}: {', '.join(map(repr, STEMS))} ('patch' is official)")
        if self.has_conv_stem and (self.patch_size < 2 or self.patch_size & (self.patch_size - 1)):
            raise ValueError(f"the conv stem halves the frame per layer: patch size {self.patch_size} must be 2^k")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def has_patch_kernel(self) -> bool:
        return self.stem in ("patch", "patch+conv")

    @property
    def has_conv_stem(self) -> bool:
        return self.stem in ("conv", "patch+conv")


@dataclass(frozen=True)
class TextConfig:
    """The BERT text encoder (its last `num_uni_layer` layers are the universal layers) and the fusion encoder.

    Field names follow the official BERT config json. The fusion encoder is built, officially, with
    `fusion_layers_built` layers of which only the last `fusion_layers` run; only those are built here.
    """

    vocab_size: int = 30522
    hidden_size: int = 1024
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    text_encoder_layers: int = 24
    num_uni_layer: int = 2
    fusion_layers: int = 6
    fusion_layers_built: int = 24
    layer_norm_eps: float = 1e-12
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_act: str = "gelu"
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of {self.num_attention_heads} heads")
        if not 1 <= self.num_uni_layer <= self.text_encoder_layers:
            raise ValueError("num_uni_layer must be between 1 and text_encoder_layers")
        if not 0 < self.fusion_layers <= self.fusion_layers_built:
            raise ValueError("fusion_layers must be between 1 and fusion_layers_built")

    @property
    def first_uni_layer(self) -> int:
        return self.text_encoder_layers - self.num_uni_layer

    @property
    def fusion_layer_ids(self) -> range:
        return range(self.fusion_layers_built - self.fusion_layers, self.fusion_layers_built)


@dataclass(frozen=True)
class PreprocessConfig:
    """How media and text reach the model (the official eval transforms by default)."""

    num_frames: int = 16
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    video_interpolation: str = "nearest"  # official video eval: squash resize on uint8 frames, nearest
    image_interpolation: str = "bicubic"  # official image eval: PIL bicubic squash resize
    max_words: int = 40  # captions are cut to this many words before tokenising (official pre_caption)
    text_max_length_video: int = 35
    text_max_length_image: int = 30


@dataclass(frozen=True)
class MPLUG2Config:
    name: str
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    num_latents: int = 50
    embed_dim: int = 256

    @property
    def image_size(self) -> int:
        return self.vision.image_size

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # A field added after release is written only when it differs from its default: the config (and with it
        # model_fingerprint, which archives check) of every model with the official stem stays what earlier
        # versions wrote, so their archives keep their vectors and their code still reads models saved now.
        if self.vision.stem == VisionConfig.stem:
            del data["vision"]["stem"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MPLUG2Config:
        preprocess = dict(data.get("preprocess", {}))
        for key in ("mean", "std"):
            if key in preprocess:
                preprocess[key] = tuple(preprocess[key])
        return cls(
            name=data["name"],
            vision=VisionConfig(**data.get("vision", {})),
            text=TextConfig(**data.get("text", {})),
            preprocess=PreprocessConfig(**preprocess),
            num_latents=data.get("num_latents", 50),
            embed_dim=data.get("embed_dim", 256),
        )

    @classmethod
    def from_json(cls, path: str | Path) -> MPLUG2Config:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_official(
        cls,
        name: str,
        bert: dict[str, Any],
        vision: dict[str, Any],
        num_latents: int = 50,
        embed_dim: int = 256,
        num_frames: int | None = None,
    ) -> MPLUG2Config:
        """From the official BERT config json (`config_bert*.json` fields) and the CLIP ViT settings.

        Officially the fusion encoder is built with the BERT config's `num_hidden_layers` layers.
        """
        text_fields = {f for f in TextConfig.__dataclass_fields__}
        text = {k: v for k, v in bert.items() if k in text_fields}
        text.setdefault("text_encoder_layers", bert.get("num_hidden_layers", 12))
        text.setdefault("fusion_layers_built", bert.get("num_hidden_layers", text["text_encoder_layers"]))
        if int(bert.get("stride_layer", 1000)) <= text.get("fusion_layers", 6) - 1:
            raise ValueError(
                "fusion layers with stride_layer merged attention are not supported (no released "
                "retrieval checkpoint uses them)"
            )
        vision_fields = {f for f in VisionConfig.__dataclass_fields__}
        frames = num_frames or vision.get("num_frames") or 16
        return cls(
            name=name,
            vision=VisionConfig(**{k: v for k, v in vision.items() if k in vision_fields}),
            text=TextConfig(**text),
            preprocess=PreprocessConfig(num_frames=frames),
            num_latents=num_latents,
            embed_dim=embed_dim,
        )
