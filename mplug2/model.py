"""MPLUG2Retrieval: mPLUG-2's backbone with mPLUG (v1)'s retrieval heads, shaped for search.

- `encode_video` / `encode_image`: VideoFormer → (`visn_fc` + `visn_layer_norm` when the vision width differs from
  the text hidden size) → universal layers in vision mode, added back and normalised (`visn_emb_norm`) → visual
  tokens and the ITC vector `normalize(vision_proj(tokens[:, 0]))`.
- `encode_text`: every text-encoder layer → tokens and `normalize(text_proj(tokens[:, 0]))`.
- `itm_logits`: the fusion encoder on aligned (text, visual tokens) pairs, `itm_head` on the text CLS: [N, 2],
  index 1 = match.
The fusion encoder and `itm_head` are optional (`with_fusion=False`): the dual-encoder path never needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mplug2.config import MPLUG2Config
from mplug2.fusion_encoder import FusionEncoder
from mplug2.text_encoder import TextEncoder
from mplug2.video_encoder import VisualEncoder


def calibrated_score(cosine, itm_logits, temperature):  # numpy arrays or torch tensors alike
    """The engine's final score of a re-ranked pair: the ITC logit `cosine / τ` plus the ITM head's log-odds that
    the pair matches, two log-scale quantities of one kind. itm_logits [..., 2] (no-match, match)."""
    return cosine / temperature + (itm_logits[..., 1] - itm_logits[..., 0])


@dataclass
class VisualOutput:
    tokens: torch.Tensor  # [B, 1 + T*HW, hidden]: what the fusion encoder reads
    feat: torch.Tensor  # [B, embed_dim], L2-normalised ITC vector


@dataclass
class TextOutput:
    tokens: torch.Tensor  # [N, L, hidden]
    mask: torch.Tensor  # [N, L]
    feat: torch.Tensor  # [N, embed_dim], L2-normalised ITC vector

    def __getitem__(self, rows: slice | torch.Tensor | list[int]) -> TextOutput:
        return TextOutput(self.tokens[rows], self.mask[rows], self.feat[rows])


class MPLUG2Retrieval(nn.Module):
    def __init__(self, config: MPLUG2Config, with_fusion: bool = True) -> None:
        super().__init__()
        self.config = config
        hidden = config.text.hidden_size
        self.visual_encoder = VisualEncoder(config.vision)
        self.text_encoder = TextEncoder(config.text, config.num_latents)
        if config.vision.width != hidden:
            self.visn_fc = nn.Linear(config.vision.width, hidden)
            self.visn_layer_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.visn_emb_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.vision_proj = nn.Linear(hidden, config.embed_dim)
        self.text_proj = nn.Linear(hidden, config.embed_dim)
        self.temp = nn.Parameter(torch.tensor(0.07))
        self.with_fusion = with_fusion
        if with_fusion:
            self.fusion_encoder = FusionEncoder(config.text)
            self.itm_head = nn.Linear(hidden, 2)

    def visual_tokens(self, vit_tokens: torch.Tensor) -> torch.Tensor:
        """VideoFormer output [B, N, width] → the visual tokens after the universal layers [B, N, hidden]."""
        if hasattr(self, "visn_fc"):
            vit_tokens = self.visn_layer_norm(self.visn_fc(vit_tokens))
        return self.visn_emb_norm(vit_tokens + self.text_encoder.forward_vision(vit_tokens))

    def encode_video(self, video: torch.Tensor) -> VisualOutput:
        """video [B, T, 3, H, W], normalised → tokens and ITC vector."""
        tokens = self.visual_tokens(self.visual_encoder(video))
        return VisualOutput(tokens, F.normalize(self.vision_proj(tokens[:, 0]), dim=-1))

    def encode_image(self, images: torch.Tensor) -> VisualOutput:
        """images [B, 3, H, W], normalised: one-frame videos."""
        return self.encode_video(images[:, None])

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextOutput:
        tokens = self.text_encoder(input_ids, attention_mask)
        return TextOutput(tokens, attention_mask, F.normalize(self.text_proj(tokens[:, 0]), dim=-1))

    def itm_logits(
        self,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        visual_tokens: torch.Tensor,
        visual_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Aligned pairs: text [N, L, hidden] + mask [N, L], visual [N, V, hidden] → logits [N, 2] (1 = match)."""
        if not self.with_fusion:
            raise RuntimeError("this model was built without the fusion encoder (with_fusion=False): no ITM scores")
        fused = self.fusion_encoder(text_tokens, text_mask, visual_tokens.to(text_tokens.dtype), visual_mask)
        return self.itm_head(fused[:, 0])
