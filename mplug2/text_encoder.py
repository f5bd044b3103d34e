"""The text encoder: BERT (post-LN) whose last `num_uni_layer` layers are mPLUG-2's universal layers.

Text mode runs every layer (self-attention + FFN). Vision mode runs only the universal layers, sharing their
self-attention and FFN weights with the text path and adding cross-attention:
- the first universal layer starts from learned `latents` [num_latents, hidden]: self-attention among the latents,
  cross-attention to the visual tokens V, FFN (middle universal layers, if any, continue on the latents);
- the last universal layer runs on V itself: self-attention over all visual tokens, cross-attention to the latents'
  output, FFN.
The caller adds the result to V and normalises (`visn_emb_norm`), as the official model does.
"""

from __future__ import annotations

import torch
from torch import nn

from mplug2.config import TextConfig
from mplug2.layers import BertAttention, BertEmbeddings, BertIntermediate, BertOutput, key_padding_mask


class BertLayer(nn.Module):
    def __init__(self, config: TextConfig, index: int, num_latents: int) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        if index >= config.first_uni_layer:
            self.crossattention = BertAttention(config)
        if index == config.first_uni_layer:
            self.latents = nn.Parameter(torch.randn(num_latents, config.hidden_size))
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Self-attention over `x` (key mask `mask`), then cross-attention to `context` when given, then FFN."""
        x = self.attention(x, mask=mask)
        if context is not None:
            x = self.crossattention(x, context)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, config: TextConfig, num_latents: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config, i, num_latents) for i in range(config.text_encoder_layers))


class TextEncoder(nn.Module):
    def __init__(self, config: TextConfig, num_latents: int) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config, num_latents)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text mode: token ids [N, L] and mask [N, L] → hidden states [N, L, hidden] after every layer."""
        x = self.embeddings(input_ids)
        mask = key_padding_mask(attention_mask)
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x

    def forward_vision(self, visual: torch.Tensor) -> torch.Tensor:
        """Vision mode: visual tokens V [B, N, hidden] → the universal layers' output [B, N, hidden]."""
        layers = self.encoder.layer[self.config.first_uni_layer :]
        hidden = layers[0].latents.to(visual.dtype).expand(visual.shape[0], -1, -1)  # [B, num_latents, hidden]
        for position, layer in enumerate(layers):
            context = visual
            if position == len(layers) - 1:  # the last universal layer turns back onto V, reading the latents
                context, hidden = hidden, visual
            hidden = layer(hidden, context=context)
        return hidden
