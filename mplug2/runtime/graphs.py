"""The model's inference paths as stand-alone graphs a fast runtime can compile: each takes plain tensors and returns
plain tensors, so one export serves every batch size (the batch axis, text length and visual token count are
dynamic; frames per clip are the model config's).

- `video`: normalised clips [B, T, 3, S, S] → visual tokens [B, V, H] and the ITC vector [B, D];
- `image`: normalised images [B, 3, S, S] → the same (a one-frame video, its own graph: the temporal adapters see
  one frame);
- `text`: token ids and mask [N, L] → text tokens [N, L, H] and the ITC vector [N, D];
- `itm`: text tokens, text mask and visual tokens of aligned pairs → ITM logits [N, 2].
"""

from __future__ import annotations

import torch
from torch import nn

from mplug2.model import MPLUG2Retrieval

GRAPHS = ("video", "image", "text", "itm")


class VideoGraph(nn.Module):
    def __init__(self, model: MPLUG2Retrieval) -> None:
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model.encode_video(video)
        return output.tokens, output.feat


class ImageGraph(VideoGraph):
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model.encode_image(images)
        return output.tokens, output.feat


class TextGraph(VideoGraph):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model.encode_text(input_ids, attention_mask)
        return output.tokens, output.feat


class ItmGraph(VideoGraph):
    def forward(self, text_tokens: torch.Tensor, text_mask: torch.Tensor, visual_tokens: torch.Tensor) -> torch.Tensor:
        return self.model.itm_logits(text_tokens, text_mask, visual_tokens)


def graph_module(model: MPLUG2Retrieval, graph: str) -> nn.Module:
    modules = {"video": VideoGraph, "image": ImageGraph, "text": TextGraph, "itm": ItmGraph}
    return modules[graph](model).eval()


def example_inputs(model: MPLUG2Retrieval, graph: str, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes and types for tracing `graph` (values do not matter to the trace)."""
    config = model.config
    size, frames, hidden = config.image_size, config.preprocess.num_frames, config.text.hidden_size
    length = config.preprocess.text_max_length_video
    if graph == "video":
        return (torch.randn(batch, frames, 3, size, size),)
    if graph == "image":
        return (torch.randn(batch, 3, size, size),)
    ids = torch.randint(1, config.text.vocab_size, (batch, length))
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, length // 2 :] = 0
    if graph == "text":
        return ids, mask
    visual = 1 + frames * config.vision.grid**2
    return torch.randn(batch, length, hidden), mask, torch.randn(batch, visual, hidden)


def dynamic_shapes(graph: str) -> list[list[int]]:
    """Which axes of each input are dynamic (-1): the batch always; text length and visual tokens where they vary."""
    return {
        "video": [[-1, 0, 0, 0, 0]],
        "image": [[-1, 0, 0, 0]],
        "text": [[-1, -1], [-1, -1]],
        "itm": [[-1, -1, 0], [-1, -1], [-1, -1, 0]],
    }[graph]
