"""The video encoder (VideoFormer): a CLIP ViT whose blocks add LocalTemporal adapters around spatial attention.

Input `[B, T, 3, H, W]`; each frame is patchified (Conv3d with a (1, p, p) kernel), gets its own CLS token and the
shared spatial position embedding. Every block: LocalTemporal on the patch tokens (a depth-wise temporal conv across
frames), spatial self-attention within each frame, LocalTemporal again, MLP. Output: the CLS averaged over frames,
then every patch token in frame-major order, through `ln_post`: `[B, 1 + T*HW, width]` (the official `proj` is
not applied). Parameter names equal the
official checkpoint's (`visual_encoder.visual.*`): each block is a CLIP residual attention block (`attn`, `ln_1`,
`mlp.c_fc`, `mlp.c_proj`, `ln_2`, as in CLIP and open_clip) built here from torch modules. Importing open_clip for
it would pull in torchvision and torch._dynamo: seconds at the start of every search.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from mplug2.config import VisionConfig


class LayerNormFp32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as CLIP's), cast back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight, self.bias, self.eps).to(x.dtype)


class QuickGELU(nn.Module):
    """CLIP's GELU approximation, x * sigmoid(1.702 x): the weights were trained with it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class LocalTemporal(nn.Module):
    """LayerNorm → 1x1x1 down-projection → depth-wise (3,1,1) temporal conv → QuickGELU → 1x1x1 up-projection."""

    def __init__(self, width: int) -> None:
        super().__init__()
        bottleneck = width // 2
        self.ln = LayerNormFp32(width)
        self.down_proj = nn.Conv3d(width, bottleneck, kernel_size=1)
        self.conv = nn.Conv3d(bottleneck, bottleneck, kernel_size=(3, 1, 1), padding=(1, 0, 0), groups=bottleneck)
        self.up_proj = nn.Conv3d(bottleneck, width, kernel_size=1)
        self.activation = QuickGELU()
        nn.init.zeros_(self.up_proj.weight)  # the adapter starts as the identity (official init)
        nn.init.zeros_(self.up_proj.bias)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """patches [B, T, H, W, D] → the adapter's residual, same shape."""
        x = self.ln(patches).permute(0, 4, 1, 2, 3)  # [B, D, T, H, W]
        x = self.up_proj(self.activation(self.conv(self.down_proj(x))))
        return x.permute(0, 2, 3, 4, 1)  # [B, T, H, W, D]


class TemporalBlock(nn.Module):
    """A CLIP block (attention within each frame, then the MLP) with `lmhra1`/`lmhra2` around the attention."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = LayerNormFp32(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = LayerNormFp32(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, 4 * width)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(4 * width, width))]
            )
        )
        self.lmhra1 = LocalTemporal(width)
        self.lmhra2 = LocalTemporal(width)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]

    def _temporal(self, adapter: LocalTemporal, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        frames, tokens, width = x.shape  # [B*T, 1+HW, D]
        grid = int((tokens - 1) ** 0.5)
        patches = x[:, 1:].reshape(frames // num_frames, num_frames, grid, grid, width)  # [B, T, H, W, D]
        patches = patches + adapter(patches)
        return torch.cat([x[:, :1], patches.reshape(frames, tokens - 1, width)], dim=1)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = self._temporal(self.lmhra1, x, num_frames)
        x = x + self.attention(self.ln_1(x))
        x = self._temporal(self.lmhra2, x, num_frames)
        return x + self.mlp(self.ln_2(x))


class TemporalTransformer(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(TemporalBlock(config.width, config.heads) for _ in range(config.layers))

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, num_frames)
        return x


class ConvStem(nn.Module):
    """Frames [N, 3, H, W] → patch features [N, width, H/p, W/p] through log2(p) stride-2 3x3 convolutions (channels
    doubling up to `width`, GELU between) and a 1x1 projection (`VisionConfig.stem` "conv" or "patch+conv")."""

    def __init__(self, width: int, patch: int) -> None:
        super().__init__()
        halvings = patch.bit_length() - 1
        channels = [3] + [width >> (halvings - i) for i in range(1, halvings + 1)]
        layers: list[nn.Module] = []
        for inputs, outputs in itertools.pairwise(channels):
            layers += [nn.Conv2d(inputs, outputs, kernel_size=3, stride=2, padding=1), nn.GELU()]
        self.layers = nn.Sequential(*layers)
        self.proj = nn.Conv2d(width, width, kernel_size=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.proj(self.layers(frames))


class VideoFormer(nn.Module):
    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        width, patch = config.width, config.patch_size
        scale = width**-0.5
        if config.has_patch_kernel:
            self.conv1 = nn.Conv3d(3, width, kernel_size=(1, patch, patch), stride=(1, patch, patch), bias=False)
        if config.has_conv_stem:
            self.stem = ConvStem(width, patch)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(config.grid**2 + 1, width))
        self.ln_pre = LayerNormFp32(width)
        self.transformer = TemporalTransformer(config)
        self.ln_post = LayerNormFp32(width)  # the official `proj` after it is never applied, so not built

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """video [B, T, 3, H, W] (normalised) → tokens [B, 1 + T*HW, width]."""
        batch, num_frames, _, height, width = video.shape
        if (height, width) != (self.config.image_size, self.config.image_size):
            raise ValueError(f"frames are {height}x{width}; this model takes {self.config.image_size}px squares")
        x = self.patch_features(video.flatten(0, 1)).flatten(2).transpose(1, 2)  # [B*T, HW, D]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # [B*T, 1+HW, D]
        x = self.transformer(self.ln_pre(x), num_frames)
        x = x.reshape(batch, num_frames, x.shape[1], x.shape[2])  # [B, T, 1+HW, D]
        cls = x[:, :, 0].mean(dim=1, keepdim=True)  # [B, 1, D]
        patches = x[:, :, 1:].flatten(1, 2)  # [B, T*HW, D], frame-major
        return self.ln_post(torch.cat([cls, patches], dim=1))

    def patch_features(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [N, 3, H, W] → [N, width, H/p, W/p]."""
        if not self.config.has_patch_kernel:
            return self.stem(frames)
        # The (1, p, p) Conv3d is a per-frame Conv2d: run it as one.
        patches = F.conv2d(frames, self.conv1.weight[:, :, 0], stride=self.config.patch_size)
        return patches + self.stem(frames) if self.config.has_conv_stem else patches


class VisualEncoder(nn.Module):
    """Holds the VideoFormer under `visual`, so parameters are named `visual_encoder.visual.*` as officially."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.visual = VideoFormer(config)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.visual(video)
