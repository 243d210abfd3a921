"""The official code's GroupNorm rules, shared by the frozen Stable Diffusion side and the trained network.

The official code sizes every GroupNorm with the largest divisor of the channel count that is <= 32 (so that the
half-width refiner's odd channel counts work) and computes the ResBlock/VAE-style norms in fp32 with eps 1e-5, while
the transformer's input norm keeps eps 1e-6 in the input dtype. Matching these exactly is what makes the reference
vectors reproduce to 1e-6.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def largest_divisor_at_most(number: int, limit: int) -> int:
    """Largest divisor of ``number`` that is <= ``limit`` (the official ``find_denominator``)."""
    if limit >= number:
        return number
    for candidate in range(limit, 0, -1):
        if number % candidate == 0:
            return candidate
    return 1


class FP32GroupNorm(nn.GroupNorm):
    """GroupNorm computed in fp32 and cast back, as the official ``GroupNorm_leq32``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).to(x.dtype)


def group_norm(channels: int, eps: float = 1e-5, fp32: bool = True) -> nn.GroupNorm:
    groups = largest_divisor_at_most(channels, 32)
    cls = FP32GroupNorm if fp32 else nn.GroupNorm
    return cls(groups, channels, eps=eps)


def set_official_group_norms(module: nn.Module, eps: float | None = None) -> nn.Module:
    """Re-size every GroupNorm in ``module`` to the official group rule (and optionally its eps), in place, and
    compute them in fp32 so that half-precision runs normalise like the official ``GroupNorm32``.

    Parameter shapes do not depend on the group count, so this is safe before or after loading weights.
    """
    for sub in module.modules():
        if isinstance(sub, nn.GroupNorm):
            sub.num_groups = largest_divisor_at_most(sub.num_channels, 32)
            sub.__class__ = FP32GroupNorm
            if eps is not None:
                sub.eps = eps
    return module
