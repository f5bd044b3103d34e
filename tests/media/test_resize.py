"""mplug2.resize reproduces the official torchvision transforms exactly, without importing torch."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from mplug2.resize import resize_frames


@pytest.mark.parametrize(("height", "width", "size"), [(64, 96, 32), (37, 53, 224), (224, 224, 224), (480, 270, 56)])
def test_nearest_matches_torchvision_on_uint8_tensors(height: int, width: int, size: int) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, height, width, 3), dtype=np.uint8)
    reference = transforms.Resize((size, size), interpolation=InterpolationMode.NEAREST)(
        torch.from_numpy(frames).permute(0, 3, 1, 2)
    )
    assert np.array_equal(resize_frames(frames, size, "nearest"), reference.permute(0, 2, 3, 1).numpy())


def test_bicubic_matches_torchvision_on_pil_images() -> None:
    frame = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    reference = transforms.Resize((64, 64), interpolation=InterpolationMode.BICUBIC)(Image.fromarray(frame))
    assert np.array_equal(resize_frames(frame[None], 64, "bicubic")[0], np.asarray(reference))
