"""Image pixels as the models and writers hand them over: the one conversion of a float RGB tensor to uint8."""

from __future__ import annotations

import numpy as np
import torch


def uint8_rgb(pixels: torch.Tensor) -> np.ndarray:
    """H x W x 3 uint8 of a (3, H, W) float tensor in [0, 1] (rounded half to even, as ``torch.round``)."""
    return np.ascontiguousarray((pixels.detach().float().cpu().permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
