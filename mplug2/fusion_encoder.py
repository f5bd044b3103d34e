"""The fusion encoder: text self-attention, cross-attention to the visual tokens, FFN, per layer.

Officially `fusion_layers_built` layers are created and only the last `fusion_layers` run; only those are built
here, kept under their official indices (`fusion_encoder.encoder.layer.18` ... `.23` for the large model) so
checkpoints load by name. Its input is the text encoder's output; the visual tokens pass through unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from mplug2.config import TextConfig
from mplug2.layers import BertAttention, BertIntermediate, BertOutput, key_padding_mask


class FusionLayer(nn.Module):
    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.crossattention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self, text: torch.Tensor, text_mask: torch.Tensor | None, visual: torch.Tensor, visual_mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = self.attention(text, mask=text_mask)
        x = self.crossattention(x, visual, visual_mask)
        return self.output(self.intermediate(x), x)


class FusionStack(nn.Module):
    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleDict({str(i): FusionLayer(config) for i in config.fusion_layer_ids})


class FusionEncoder(nn.Module):
    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.encoder = FusionStack(config)

    def forward(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        visual: torch.Tensor,
        visual_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """text [N, L, hidden] with mask [N, L]; visual [N, V, hidden] (mask [N, V] or None) → [N, L, hidden]."""
        text_keys, visual_keys = key_padding_mask(text_mask), key_padding_mask(visual_mask)
        for layer in self.encoder.layer.values():
            text = layer(text, text_keys, visual, visual_keys)
        return text
