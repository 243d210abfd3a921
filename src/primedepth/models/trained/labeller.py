"""Everything PrimeDepth trains: fusion convs, the half-width refiner decoder and the prediction heads.

Data flow per decoder block ``i`` (see ``layout.fusion_layout`` for the channel plan):
``merged_i = merge_conv(cat(feature_conv(features_i), attention_conv(maps_i)))`` and
``h = refiner_block_i(cat(h, merged_i))``; then ``refiner_out = conv_out(silu(norm_out(h)))`` feeds the depth
head (3 channels, averaged by the pipeline) and, when asked, the 150-class segmentation head.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..banded import release_freed_memory
from ..group_norms import group_norm
from ..layout import FusionStep, fusion_layout, unet_layout
from ..preimage import Preimage
from .heads import VAEDecoderHead
from .layers import SpatialTransformer, TimestepResBlock, Upsample2x


class RefinerBlock(nn.Module):
    def __init__(self, step: FusionStep, emb_channels: int, context_dim: int, use_linear: bool = True):
        super().__init__()
        self.resnet = TimestepResBlock(step.refiner_in, step.refiner_out, emb_channels)
        self.attention = (
            SpatialTransformer(step.refiner_out, step.refiner_heads, step.refiner_head_dim, context_dim, use_linear)
            if step.refiner_heads
            else None
        )
        self.upsample = Upsample2x(step.refiner_out) if step.upsample else None

    def forward(self, x, emb, context, output_size):
        x = self.resnet(x, emb)
        if self.attention is not None:
            x = self.attention(x, context)
        if self.upsample is not None:
            x = self.upsample(x, output_size)
        return x


def _conv1x1(cin: int, cout: int) -> nn.Module | None:
    return nn.Conv2d(cin, cout, 1) if cin and cout else None


@dataclass
class LabellerOutput:
    depth: torch.Tensor | None = None  # (B, depth_channels, 8h, 8w)
    segmentation: torch.Tensor | None = None  # (B, classes, 8h, 8w) logits
    refiner_out: torch.Tensor | None = None
    merged: list[torch.Tensor | None] = field(default_factory=list)


class PrimeDepthLabeller(ModelMixin, ConfigMixin):
    """Fusion + refiner + heads. The first block of hyper-parameters describes the frozen UNet (official names)."""

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
    ):
        """``latent_channels > 0`` builds the no-preimage baseline (an ablation): every fusion step reads the
        VAE latent (that many channels, resized to the step's size) instead of the UNet's features; no maps."""
        super().__init__()
        if latent_channels and (use_self_attn_maps or use_cross_attn_maps or not use_feature_maps):
            raise ValueError(
                "latent_channels > 0 (no-preimage baseline) needs use_feature_maps=True and no attention maps"
            )
        unet = unet_layout(
            model_channels, list(channel_mult), num_res_blocks, list(attention_resolutions), num_head_channels
        )
        self.steps = fusion_layout(
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
        if latent_channels:
            self.steps = [dataclasses.replace(s, feature_in=latent_channels) for s in self.steps]
        emb_channels = 4 * model_channels
        self.feature_convs = nn.ModuleList(_conv1x1(s.feature_in, s.feature_out) or nn.Identity() for s in self.steps)
        self.attention_convs = nn.ModuleList(
            _conv1x1(s.attention_in, s.attention_out) or nn.Identity() for s in self.steps
        )
        self.merge_convs = nn.ModuleList(_conv1x1(s.merge_in, s.merge_out) or nn.Identity() for s in self.steps)
        self.refiner = nn.ModuleList(
            RefinerBlock(s, emb_channels, context_dim, use_linear_in_transformer) for s in self.steps
        )
        last = self.steps[-1].refiner_out
        self.refiner_norm_out = group_norm(last)
        self.refiner_conv_out = nn.Conv2d(last, channels2predictor, 3, padding=1)
        head_kwargs = dict(ch=head_ch, ch_mult=tuple(head_ch_mult), num_res_blocks=head_num_res_blocks)
        self.depth_head = VAEDecoderHead(channels2predictor, depth_channels, **head_kwargs)
        self.segmentation_head = (
            VAEDecoderHead(channels2predictor, segmentation_classes, **head_kwargs) if segmentation_classes else None
        )

    def preimage_request(self) -> dict:
        """Keyword arguments for ``PreimageExtractor``: compute exactly the maps this labeller fuses."""
        cfg = self.config
        return dict(
            self_maps=cfg.use_self_attn_maps,
            cross_maps=cfg.use_cross_attn_maps,
            regions_per_side=int(round(cfg.n_sa_maps**0.5)),
            token_groups=cfg.n_ca_maps,
            latent_only=bool(cfg.latent_channels),
        )

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

    def forward(
        self,
        preimage: Preimage,
        segmentation: bool = False,
        depth: bool = True,
        return_intermediates: bool = False,
        low_memory: bool = False,
    ) -> LabellerOutput:
        """``low_memory``: release each preimage block as soon as it is fused (the caller's ``preimage`` is emptied)
        and run the heads in row bands (``VAEDecoderHead(low_memory=True)``)."""
        out = LabellerOutput()
        h = None
        n = len(self.steps)
        dtype = self.refiner_conv_out.weight.dtype
        emb, context = preimage.emb.to(dtype), preimage.context.to(dtype)
        sizes = [tuple(f.shape[-2:]) for f in preimage.features]
        for i, block in enumerate(self.refiner):
            merged = self.fuse(preimage, i)
            if low_memory:
                preimage.features[i] = None
                if i == 0:
                    preimage.mid_maps = None
                else:
                    preimage.decoder_maps[i - 1] = None
                preimage.encoder_maps[len(preimage.encoder_maps) - 1 - i] = None
            if return_intermediates:
                out.merged.append(merged)
            if h is None:
                h = merged
            elif merged is not None:
                h = torch.cat([h, merged], dim=1)
            output_size = sizes[i + 1] if i + 1 < n else None
            h = block(h, emb, context, output_size)
        h = self.refiner_conv_out(F.silu(self.refiner_norm_out(h)))
        if return_intermediates:
            out.refiner_out = h
        if low_memory:
            release_freed_memory(h.device)
        if depth:
            out.depth = self.depth_head(h, low_memory=low_memory)
        if segmentation:
            if self.segmentation_head is None:
                raise ValueError("this model has no segmentation head (segmentation_classes=0)")
            out.segmentation = self.segmentation_head(h, low_memory=low_memory)
        return out
