"""``BlockPreIm`` ablation (paper Table 3): the VPD-like baseline that feeds the preimage as one block.

Instead of fusing each decoder block's features and maps into the matching refiner block, the *whole* preimage (all
twelve decoder-block inputs and the attention maps of every encoder, middle and decoder block) is bilinearly resized
to one resolution, that of the second of the four UNet stages (decoder blocks 3-5, i.e. 1/16 of the image), projected
by 1x1 convs and fed as a single block into the refiner, which then runs its remaining blocks (from that stage on)
without further fusion. Heads, refiner blocks and conditioning are the full model's.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from ..preimage import Preimage
from .base import Labeller, LabellerArguments, shared_arguments


class BlockPreimageLabeller(Labeller):
    """``LabellerArguments`` plus ``block_stage``: the UNet stage whose resolution the single block has."""

    @register_to_config
    @shared_arguments
    def __init__(self, arguments: LabellerArguments, *, block_stage: int = 1):
        a = arguments
        if a.latent_channels:
            raise ValueError("BlockPreIm fuses the preimage; latent_channels (the no-preimage baseline) must be 0")
        super().__init__()
        unet = a.unet_layout()
        full = a.fusion_layout(unet)
        if not 0 <= block_stage < len(a.channel_mult):
            raise ValueError(f"block_stage must be in 0..{len(a.channel_mult) - 1}, got {block_stage}")
        if not (a.use_feature_maps or a.use_self_attn_maps or a.use_cross_attn_maps):
            raise ValueError("BlockPreIm needs features or attention maps")
        self.first = block_stage * (a.num_res_blocks + 1)
        maps_per_head = a.n_ca_maps * a.use_cross_attn_maps + a.n_sa_maps * a.use_self_attn_maps
        n_decoder_maps = len(unet.decoder) - 1  # the last decoder block's maps are never computed
        heads = [b.heads for b in unet.encoder] + [unet.mid_heads] + [b.heads for b in unet.decoder[:n_decoder_maps]]
        self.feature_channels = sum(b.in_channels for b in unet.decoder) if a.use_feature_maps else 0
        self.attention_channels = sum(h for h in heads if h) * maps_per_head
        merged = full[self.first].refiner_in
        attn_out = full[self.first].attention_out if self.attention_channels else 0
        if not self.feature_channels:
            attn_out = merged
        feat_out = merged - attn_out if self.feature_channels else 0
        self.feature_conv = nn.Conv2d(self.feature_channels, feat_out, 1) if feat_out else None
        self.attention_conv = nn.Conv2d(self.attention_channels, attn_out, 1) if attn_out else None
        self.merge_conv = nn.Conv2d(feat_out + attn_out, merged, 1)
        steps, prev = [], None
        for step in full[self.first :]:
            steps.append(step if prev is None else dataclasses.replace(step, refiner_in=prev))
            prev = step.refiner_out
        self.build_refiner(a, steps)

    def block(self, preimage: Preimage) -> torch.Tensor:
        """The single fused block at the resolution of decoder block ``first``'s input."""
        size = tuple(preimage.features[self.first].shape[-2:])

        def resize(x):
            return x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="bilinear")

        parts = []
        if self.feature_conv is not None:
            parts.append(self.feature_conv(torch.cat([resize(f) for f in preimage.features], dim=1)))
        if self.attention_conv is not None:
            use = (self.config.use_self_attn_maps, self.config.use_cross_attn_maps)
            maps = [
                m.select(*use)
                for m in (*preimage.encoder_maps, preimage.mid_maps, *preimage.decoder_maps)
                if m is not None
            ]
            maps = torch.cat([resize(m) for m in maps if m is not None], dim=1)
            if maps.shape[1] != self.attention_channels:
                raise ValueError(
                    f"BlockPreIm expected {self.attention_channels} attention channels, got "
                    f"{maps.shape[1]} (was the preimage extracted with the same map switches?)"
                )
            parts.append(self.attention_conv(maps))
        return self.merge_conv(torch.cat(parts, dim=1))

    def refine(self, preimage: Preimage, merged: list | None, consume_preimage: bool) -> torch.Tensor:
        emb, context, sizes = self.conditioning(preimage)
        h = self.block(preimage)
        if consume_preimage:  # the block has read every feature and map
            preimage.features[:] = [None] * len(preimage.features)
            preimage.encoder_maps[:] = [None] * len(preimage.encoder_maps)
            preimage.decoder_maps[:] = [None] * len(preimage.decoder_maps)
            preimage.mid_maps = None
        if merged is not None:
            merged.append(h)
        for j in range(len(self.refiner)):
            h = self.run_refiner_block(j, h, emb, context, sizes)
        return h
