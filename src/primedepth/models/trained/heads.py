"""Prediction heads: the SD VAE decoder architecture, fed with the refiner output instead of a latent."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..banded import norm_act_conv_banded
from ..group_norms import group_norm
from .layers import ResnetBlock, SingleHeadSpatialAttention, Upsample2x


class VAEDecoderHead(nn.Module):
    """Upsamples the latent-resolution refiner output 2^(len(ch_mult)-1)x to ``out_channels`` maps.

    Same blocks as the VAE decoder (mid ResnetBlock-attention-ResnetBlock, ``num_res_blocks + 1`` ResnetBlocks per
    level, nearest-2x + conv upsampling); only ``conv_in`` (from ``in_channels``) and ``conv_out`` differ.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ch: int = 128,
        ch_mult: tuple[int, ...] = (1, 2, 4, 4),
        num_res_blocks: int = 2,
    ):
        super().__init__()
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(in_channels, block_in, 3, padding=1)
        self.mid_block_1 = ResnetBlock(block_in, block_in)
        self.mid_attn = SingleHeadSpatialAttention(block_in)
        self.mid_block_2 = ResnetBlock(block_in, block_in)
        self.up = nn.ModuleList()  # ordered from the lowest resolution up, as they run
        for level in reversed(range(len(ch_mult))):
            stage = nn.Module()
            blocks = []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, ch * ch_mult[level]))
                block_in = ch * ch_mult[level]
            stage.blocks = nn.ModuleList(blocks)
            stage.upsample = Upsample2x(block_in) if level > 0 else None
            self.up.append(stage)
        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, low_memory: bool = False, band: int | None = None) -> torch.Tensor:
        """``low_memory``: run the ResnetBlocks, upsampling convs and output conv in row bands (exact up to float
        rounding; about 1/3 less peak activation memory at full resolution, a little slower)."""
        if low_memory:
            return self._forward_banded(x, band)
        h = self.conv_in(x)
        h = self.mid_block_2(self.mid_attn(self.mid_block_1(h)))
        for stage in self.up:
            for block in stage.blocks:
                h = block(h)
            if stage.upsample is not None:
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))

    def _forward_banded(self, x: torch.Tensor, band: int | None) -> torch.Tensor:
        h = self.conv_in(x)
        h = self.mid_block_2(self.mid_attn(self.mid_block_1(h)))
        last = len(self.up) - 1
        for i, stage in enumerate(self.up):
            for j, block in enumerate(stage.blocks):
                if i == last and j == 0 and self.up[i - 1].upsample is not None:
                    # full resolution: never form the upsampled input (the largest tensor of the head)
                    h = block.forward_upsampled_banded(h, self.up[i - 1].upsample, band)
                    continue
                holder = [h]
                del h
                h = block.forward_banded(holder, band, in_place=i == last)
            if stage.upsample is not None and not (i == last - 1 and last > 0):
                h = stage.upsample.forward_banded(h, band)
        return norm_act_conv_banded(h, self.norm_out, self.conv_out, band)
