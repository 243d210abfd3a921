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
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..group_norms import group_norm
from ..layout import fusion_layout, unet_layout
from ..preimage import Preimage
from .heads import VAEDecoderHead
from .labeller import LabellerOutput, PrimeDepthLabeller, RefinerBlock


class BlockPreimageLabeller(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        model_channels: int = 320,
        channel_mult: tuple[int, ...] = (1, 2, 4, 4),
        num_res_blocks: int = 2,
        attention_resolutions: tuple[int, ...] = (4, 2, 1),
        num_head_channels: int = 64,
        context_dim: int = 1024,
        use_linear_in_transformer: bool = True,
        refiner_model_ratio: float = 0.5,
        use_self_attn_maps: bool = True,
        use_cross_attn_maps: bool = True,
        use_feature_maps: bool = True,
        n_sa_maps: int = 64,
        n_ca_maps: int = 77,
        scale_input_features_with_model: bool = True,
        channels2predictor: int = 512,
        depth_channels: int = 3,
        segmentation_classes: int = 150,
        head_ch: int = 128,
        head_ch_mult: tuple[int, ...] = (1, 2, 4, 4),
        head_num_res_blocks: int = 2,
        latent_channels: int = 0,
        block_stage: int = 1,
    ):
        super().__init__()
        if latent_channels:
            raise ValueError("BlockPreIm fuses the preimage; latent_channels (the no-preimage baseline) must be 0")
        unet = unet_layout(
            model_channels, list(channel_mult), num_res_blocks, list(attention_resolutions), num_head_channels
        )
        full = fusion_layout(
            unet,
            model_channels=model_channels,
            channel_mult=list(channel_mult),
            num_res_blocks=num_res_blocks,
            attention_resolutions=list(attention_resolutions),
            num_head_channels=num_head_channels,
            refiner_model_ratio=refiner_model_ratio,
            use_self_attn_maps=use_self_attn_maps,
            use_cross_attn_maps=use_cross_attn_maps,
            use_feature_maps=use_feature_maps,
            n_sa_maps=n_sa_maps,
            n_ca_maps=n_ca_maps,
            scale_input_features_with_model=scale_input_features_with_model,
        )
        if not 0 <= block_stage < len(channel_mult):
            raise ValueError(f"block_stage must be in 0..{len(channel_mult) - 1}, got {block_stage}")
        if not (use_feature_maps or use_self_attn_maps or use_cross_attn_maps):
            raise ValueError("BlockPreIm needs features or attention maps")
        self.first = block_stage * (num_res_blocks + 1)
        maps_per_head = n_ca_maps * use_cross_attn_maps + n_sa_maps * use_self_attn_maps
        n_decoder_maps = len(unet.decoder) - 1  # the last decoder block's maps are never computed
        heads = [b.heads for b in unet.encoder] + [unet.mid_heads] + [b.heads for b in unet.decoder[:n_decoder_maps]]
        self.feature_channels = sum(b.in_channels for b in unet.decoder) if use_feature_maps else 0
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
        self.steps = steps
        emb_channels = 4 * model_channels
        self.refiner = nn.ModuleList(
            RefinerBlock(s, emb_channels, context_dim, use_linear_in_transformer) for s in steps
        )
        last = steps[-1].refiner_out
        self.refiner_norm_out = group_norm(last)
        self.refiner_conv_out = nn.Conv2d(last, channels2predictor, 3, padding=1)
        head_kwargs = dict(ch=head_ch, ch_mult=tuple(head_ch_mult), num_res_blocks=head_num_res_blocks)
        self.depth_head = VAEDecoderHead(channels2predictor, depth_channels, **head_kwargs)
        self.segmentation_head = (
            VAEDecoderHead(channels2predictor, segmentation_classes, **head_kwargs) if segmentation_classes else None
        )

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

    preimage_request = PrimeDepthLabeller.preimage_request

    def forward(
        self,
        preimage: Preimage,
        segmentation: bool = False,
        depth: bool = True,
        return_intermediates: bool = False,
        low_memory: bool = False,
    ) -> LabellerOutput:
        out = LabellerOutput()
        h = self.block(preimage)
        if return_intermediates:
            out.merged.append(h)
        n = len(preimage.features)
        for j, block in enumerate(self.refiner):
            i = self.first + j
            output_size = tuple(preimage.features[i + 1].shape[-2:]) if i + 1 < n else None
            h = block(h, preimage.emb, preimage.context, output_size)
        h = self.refiner_conv_out(F.silu(self.refiner_norm_out(h)))
        if return_intermediates:
            out.refiner_out = h
        if depth:
            out.depth = self.depth_head(h, low_memory=low_memory)
        if segmentation:
            if self.segmentation_head is None:
                raise ValueError("this model has no segmentation head (segmentation_classes=0)")
            out.segmentation = self.segmentation_head(h, low_memory=low_memory)
        return out
