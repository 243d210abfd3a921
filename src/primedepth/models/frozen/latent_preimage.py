"""The ``"latent"`` preimage source: the no-preimage baseline's input (an ablation), which needs no UNet pass.

The noisy latent, area-resized to each decoder block's size, stands in for that block's features; there are no
attention maps. A labeller asks for it with ``preimage_request()["source"] == "latent"`` (``latent_channels > 0``)
and ``FrozenStableDiffusion`` picks this extractor by that name.
"""

from __future__ import annotations

import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from torch import Tensor

from ..preimage import Preimage
from .preimage_extractor import timestep_embedding


class LatentPreimageExtractor:
    source = "latent"

    def __init__(self, unet: UNet2DConditionModel):
        self.unet = unet  # only its time embedding and block structure are used

    def __call__(self, x_t: Tensor, timestep: Tensor, context: Tensor, *, naive=False, complete=False) -> Preimage:
        """``naive``/``complete`` are the UNet pass's switches, accepted so that every source takes the frozen step's
        settings; without a UNet pass they change nothing. Sizes follow the UNet's stride-2 convs (ceil halving)."""
        emb = timestep_embedding(self.unet, timestep, x_t)
        sizes = [tuple(x_t.shape[-2:])]
        for _ in self.unet.down_blocks[:-1]:
            sizes.append(tuple((s + 1) // 2 for s in sizes[-1]))
        features = [
            F.adaptive_avg_pool2d(x_t, size)
            for size, block in zip(reversed(sizes), self.unet.up_blocks)
            for _ in block.resnets
        ]
        n = len(features)
        return Preimage(features, [None] * n, None, [None] * n, emb, context)
