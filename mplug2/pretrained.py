"""Known checkpoints: where weights come from, kept apart from the architectures (timm's PretrainedCfg idea).

Nothing here downloads by itself. `url` is for an explicit fetch by the user (`mplug2-search fetch-checkpoint`);
`preprocess` overrides the architecture's defaults with what the weights were trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PretrainedCfg:
    name: str
    architecture: str  # a config in model_configs/
    format: str  # "official" (a .pth from the release), "folder" (this project's format), "clip" (CLIP weights)
    file: str  # file name, or for "folder" the folder
    url: str | None = None
    sha256: str | None = None
    preprocess: dict = field(default_factory=dict)
    notes: str = ""


KNOWN_CHECKPOINTS: dict[str, PretrainedCfg] = {
    cfg.name: cfg
    for cfg in (
        PretrainedCfg(
            name="mplug2-synth",
            architecture="mplug2-small",
            format="folder",
            file=str(REPO_ROOT / "data" / "models" / "mplug2-synth"),
            notes="the small model this project trains on its synthetic shapes benchmark; bundled, offline default",
        ),
        PretrainedCfg(
            name="mplug2-large-pretrain",
            architecture="mplug2-large",
            format="official",
            file="mPLUG2_Pretrain.pth",
            url="http://tjfd2.oss-cn-zhangjiakou.aliyuncs.com/mplug2/mPLUG2_Pretrain.pth",
            preprocess={"num_frames": 16},
            notes="the released pre-training checkpoint (zero-shot retrieval); whether it holds the ITC/ITM heads is "
            "unverified: the loader says so if they are missing",
        ),
        PretrainedCfg(
            name="clip-vit-l-14",
            architecture="mplug2-large",
            format="clip",
            file="ViT-L-14.tar",
            url="https://alice-open.oss-cn-zhangjiakou.aliyuncs.com/mPLUG/ViT-L-14.tar",
            notes="the CLIP weights the official training starts the video encoder from",
        ),
    )
}
