"""Runs the frozen UNet once at t = 1 and collects its preimage (features + attention maps of every block).

The last decoder block and the output conv of the frozen UNet feed nothing PrimeDepth uses, so the fast path stops
after the input of decoder block 11 has been formed; ``complete=True`` also runs that block (its maps are part of
the reference vectors). ``latent_only=True`` skips the UNet altogether for the no-preimage baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from ..preimage import BlockMaps, Preimage
from .attention_maps import MapRecorder, PreimageAttnProcessor


class PreimageExtractor:
    def __init__(self, unet: UNet2DConditionModel):
        self.unet = unet
        self.recorder = MapRecorder()
        processors = {
            name: PreimageAttnProcessor(self.recorder, is_cross=name.endswith("attn2.processor"))
            for name in unet.attn_processors
        }
        unet.set_attn_processor(processors)

    def _transformer(self, module, h, context, want_self, want_cross):
        self.recorder.start(tuple(h.shape[-2:]), want_self, want_cross)
        try:
            h = module(h, encoder_hidden_states=context, return_dict=False)[0]
        finally:
            self_maps, cross_maps = self.recorder.stop()
        return h, BlockMaps(self_maps, cross_maps)

    def __call__(
        self,
        x_t: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        *,
        self_maps: bool = True,
        cross_maps: bool = True,
        naive: bool = False,
        complete: bool = False,
        regions_per_side: int = 8,
        token_groups: int | None = None,
        latent_only: bool = False,
    ) -> Preimage:
        """``regions_per_side``: sqrt(n_sa_maps); ``token_groups``: n_ca_maps (None keeps every token)."""
        unet = self.unet
        self.recorder.naive = naive
        self.recorder.regions_per_side, self.recorder.token_groups = regions_per_side, token_groups
        emb = unet.time_embedding(unet.time_proj(timestep.expand(x_t.shape[0])).to(x_t.dtype))
        if latent_only:
            return self._latent_preimage(x_t, emb, context)

        def attend(module, h):
            return self._transformer(module, h, context, self_maps, cross_maps)

        h = unet.conv_in(x_t)
        skips, encoder_maps = [h], [None]
        for block in unet.down_blocks:
            attentions = getattr(block, "attentions", None)
            for j, resnet in enumerate(block.resnets):
                h = resnet(h, emb)
                maps = None
                if attentions is not None:
                    h, maps = attend(attentions[j], h)
                skips.append(h)
                encoder_maps.append(maps)
            if block.downsamplers is not None:
                h = block.downsamplers[0](h)
                skips.append(h)
                encoder_maps.append(None)

        mid = unet.mid_block
        h = mid.resnets[0](h, emb)
        h, mid_maps = attend(mid.attentions[0], h)
        h = mid.resnets[1](h, emb)

        features, decoder_maps = [], []
        n_blocks = sum(len(b.resnets) for b in unet.up_blocks)
        for block in unet.up_blocks:
            attentions = getattr(block, "attentions", None)
            for j, resnet in enumerate(block.resnets):
                h = torch.cat([h, skips.pop()], dim=1)
                features.append(h)
                if len(features) == n_blocks and not complete:
                    break
                h = resnet(h, emb)
                maps = None
                if attentions is not None:
                    h, maps = attend(attentions[j], h)
                decoder_maps.append(maps)
                if j == len(block.resnets) - 1 and block.upsamplers is not None:
                    h = block.upsamplers[0](h, output_size=skips[-1].shape[-2:])
        return Preimage(features, encoder_maps, mid_maps, decoder_maps, emb, context)

    def _latent_preimage(self, x_t: torch.Tensor, emb: torch.Tensor, context: torch.Tensor) -> Preimage:
        """The no-preimage baseline's input: the noisy latent, area-resized to each decoder block's size, stands in
        for that block's features; no attention maps. Sizes follow the UNet's stride-2 convs (ceil halving)."""
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
