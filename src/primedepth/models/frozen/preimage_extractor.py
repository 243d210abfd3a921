"""Runs the frozen UNet once at t = 1 and collects its preimage (features + attention maps of every block).

The last decoder block and the output conv of the frozen UNet feed nothing PrimeDepth uses, so the fast path stops
after the input of decoder block 11 has been formed; ``complete=True`` also runs that block (its maps are part of
the reference vectors). The no-preimage baseline's input, which needs no UNet pass, is
``latent_preimage.LatentPreimageExtractor``'s.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from ..preimage import BlockMaps, Preimage
from .attention_maps import MapRecorder, PreimageAttnProcessor


def timestep_embedding(unet: UNet2DConditionModel, timestep: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
    """The UNet's time embedding of ``timestep`` for each image of ``x_t``, in ``x_t``'s dtype (the refiner's
    ``emb``)."""
    return unet.time_embedding(unet.time_proj(timestep.expand(x_t.shape[0])).to(x_t.dtype))


class PreimageExtractor:
    """The ``"unet"`` preimage source: decoder-block inputs and attention maps of one UNet pass."""

    source = "unet"

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
    ) -> Preimage:
        """``regions_per_side``: sqrt(n_sa_maps); ``token_groups``: n_ca_maps (None keeps every token)."""
        unet = self.unet
        self.recorder.naive = naive
        self.recorder.regions_per_side, self.recorder.token_groups = regions_per_side, token_groups
        emb = timestep_embedding(unet, timestep, x_t)

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
