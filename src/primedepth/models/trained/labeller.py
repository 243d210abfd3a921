"""Everything PrimeDepth trains: fusion convs, the half-width refiner decoder and the prediction heads.

Data flow per decoder block ``i`` (see ``layout.fusion_layout`` for the channel plan):
``merged_i = merge_conv(cat(feature_conv(features_i), attention_conv(maps_i)))`` and
``h = refiner_block_i(cat(h, merged_i))``; then ``refiner_out = conv_out(silu(norm_out(h)))`` feeds the depth
head (3 channels, averaged by the pipeline) and, when asked, the 150-class segmentation head. The arguments, the
refiner, the heads and ``forward`` are the ``Labeller`` base's (``base.py``); this class adds the per-block fusion.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from ..preimage import Preimage
from .base import Labeller, LabellerArguments, LabellerOutput, RefinerBlock, shared_arguments

__all__ = ["LabellerOutput", "PrimeDepthLabeller", "RefinerBlock"]


def _conv1x1(cin: int, cout: int) -> nn.Module | None:
    return nn.Conv2d(cin, cout, 1) if cin and cout else None


class PrimeDepthLabeller(Labeller):
    """Fusion + refiner + heads; its arguments are ``LabellerArguments`` (the frozen UNet's in official names)."""

    @register_to_config
    @shared_arguments
    def __init__(self, arguments: LabellerArguments):
        """``latent_channels > 0`` builds the no-preimage baseline (an ablation): every fusion step reads the
        VAE latent (that many channels, resized to the step's size) instead of the UNet's features; no maps."""
        a = arguments
        if a.latent_channels and (a.use_self_attn_maps or a.use_cross_attn_maps or not a.use_feature_maps):
            raise ValueError(
                "latent_channels > 0 (no-preimage baseline) needs use_feature_maps=True and no attention maps"
            )
        super().__init__()
        steps = a.fusion_layout(a.unet_layout())
        if a.latent_channels:
            steps = [dataclasses.replace(s, feature_in=a.latent_channels) for s in steps]
        self.feature_convs = nn.ModuleList(_conv1x1(s.feature_in, s.feature_out) or nn.Identity() for s in steps)
        self.attention_convs = nn.ModuleList(_conv1x1(s.attention_in, s.attention_out) or nn.Identity() for s in steps)
        self.merge_convs = nn.ModuleList(_conv1x1(s.merge_in, s.merge_out) or nn.Identity() for s in steps)
        self.build_refiner(a, steps)

    def step_maps(self, preimage: Preimage, i: int) -> torch.Tensor | None:
        """Attention maps fused at step ``i``: previous decoder block (or middle block), then encoder block 11-i."""
        use = (self.config.use_self_attn_maps, self.config.use_cross_attn_maps)
        prev = preimage.mid_maps if i == 0 else preimage.decoder_maps[i - 1]
        prev = prev.select(*use) if prev is not None else None
        enc = preimage.encoder_maps[len(preimage.encoder_maps) - 1 - i]
        enc = enc.select(*use) if enc is not None else None
        if prev is None:
            return enc
        if enc is None:
            return prev
        if prev.shape[-2:] != enc.shape[-2:]:
            prev = F.interpolate(prev, size=enc.shape[-2:], mode="bilinear")
        return torch.cat([prev, enc], dim=1)

    def fuse(self, preimage: Preimage, i: int) -> torch.Tensor | None:
        step = self.steps[i]
        parts = []
        dtype = self.refiner_conv_out.weight.dtype  # the preimage may come from a half-precision frozen UNet
        if step.feature_out:
            parts.append(self.feature_convs[i](preimage.features[i].to(dtype)))
        if step.attention_out:
            maps = self.step_maps(preimage, i)
            size = preimage.features[i].shape[-2:]
            if maps.shape[-2:] != size:
                # Only configs without attention on both sides of a level change get here; the official code
                # cannot run them (its concatenation fails), so this resize changes no official result.
                maps = F.interpolate(maps, size=size, mode="bilinear")
            parts.append(self.attention_convs[i](maps.to(dtype)))
        return self.merge_convs[i](torch.cat(parts, dim=1)) if step.merge_out else None

    def refine(self, preimage: Preimage, merged: list | None, consume_preimage: bool) -> torch.Tensor:
        h = None
        emb, context, sizes = self.conditioning(preimage)
        for i in range(len(self.refiner)):
            fused = self.fuse(preimage, i)
            if consume_preimage:
                preimage.features[i] = None
                if i == 0:
                    preimage.mid_maps = None
                else:
                    preimage.decoder_maps[i - 1] = None
                preimage.encoder_maps[len(preimage.encoder_maps) - 1 - i] = None
            if merged is not None:
                merged.append(fused)
            if h is None:
                h = fused
            elif fused is not None:
                h = torch.cat([h, fused], dim=1)
            h = self.run_refiner_block(i, h, emb, context, sizes)
        return h
