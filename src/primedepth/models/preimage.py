"""The preimage: what the frozen UNet hands to the trainable part for one image."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class BlockMaps:
    """Processed attention maps of one UNet block, each (B, heads * maps, h, w) or None when not computed.

    ``self_maps``: self-attention pooled to 64 key regions per head, normalised per head (channel head*64 + region).
    ``cross_maps``: cross-attention probabilities (channel head*77 + token).
    """

    self_maps: torch.Tensor | None = None
    cross_maps: torch.Tensor | None = None

    def select(self, use_self: bool, use_cross: bool) -> torch.Tensor | None:
        parts = [m for m, used in ((self.self_maps, use_self), (self.cross_maps, use_cross)) if used and m is not None]
        return torch.cat(parts, dim=1) if parts else None


@dataclass
class Preimage:
    """Decoder-block inputs and attention maps of every block, plus the conditioning the refiner reuses.

    ``features[i]`` is the input of decoder block ``i`` (previous output concatenated with the skip); its spatial
    size is also the size refiner block ``i - 1`` upsamples to.
    """

    features: list[torch.Tensor]
    encoder_maps: list[BlockMaps | None]
    mid_maps: BlockMaps
    decoder_maps: list[BlockMaps | None]
    emb: torch.Tensor
    context: torch.Tensor
