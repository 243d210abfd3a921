"""Building blocks shared by the refiner and the heads, with the official code's normalisation rules.

The official code sizes every GroupNorm with the largest divisor of the channel count that is <= 32 (so that the
half-width refiner's odd channel counts work), and computes the ResBlock/VAE-style norms in fp32 with eps 1e-5
while the transformer's input norm keeps eps 1e-6 in the input dtype. Matching these exactly is what makes the
reference vectors reproduce to 1e-6.
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


def _band_rows(height: int, band: int | None) -> int:
    return max(1, band or max(8, height // 8))


def group_norm_affine(x: torch.Tensor, norm: nn.GroupNorm, band: int | None = None):
    """Per-channel ``(scale, shift)`` with ``norm(x) == x * scale + shift`` (fp32, shape (B, C, 1, 1)).

    Two passes over row bands (mean, then centred variance), so no full-size temporary is formed.
    """
    b, c, height, _ = x.shape
    g = norm.num_groups
    rows = _band_rows(height, band)
    total = torch.zeros(b, c, dtype=torch.float64, device=x.device)
    for r in range(0, height, rows):
        total += x[:, :, r:r + rows].float().sum(dim=(2, 3), dtype=torch.float64)
    count = x[0, 0].numel() * (c // g)
    mean = total.view(b, g, -1).sum(-1) / count  # (B, G)
    mean_c = mean.repeat_interleave(c // g, dim=1)[:, :, None, None]
    sq = torch.zeros(b, c, dtype=torch.float64, device=x.device)
    for r in range(0, height, rows):
        sq += (x[:, :, r:r + rows].double() - mean_c).square().sum(dim=(2, 3))
    var = sq.view(b, g, -1).sum(-1) / count
    rstd = (var + norm.eps).rsqrt().repeat_interleave(c // g, dim=1)
    weight = norm.weight.double() if norm.weight is not None else 1.0
    bias = norm.bias.double() if norm.bias is not None else 0.0
    scale = rstd * weight
    shift = bias - mean.repeat_interleave(c // g, dim=1) * scale
    return scale.float()[:, :, None, None], shift.float()[:, :, None, None]


def norm_act_conv_banded(x: torch.Tensor, norm: nn.GroupNorm, conv: nn.Conv2d, band: int | None = None,
                         out: torch.Tensor | None = None) -> torch.Tensor:
    """``conv(silu(norm(x)))`` computed in row bands: the only full-size tensor formed is the output.

    ``conv`` must have stride 1 and symmetric padding; ``out`` (same shape as the result), when given, is added to.
    """
    b, _, height, width = x.shape
    pad = conv.padding[0]
    scale, shift = group_norm_affine(x, norm, band)
    rows = _band_rows(height, band)
    result = None
    for r in range(0, height, rows):
        lo, hi = max(0, r - pad), min(height, r + rows + pad)
        y = F.silu(x[:, :, lo:hi].float() * scale + shift, inplace=True).to(x.dtype)
        y = F.pad(y, (0, 0, pad - (r - lo), pad - (hi - min(height, r + rows))))
        part = F.conv2d(y, conv.weight, conv.bias, padding=(0, conv.padding[1]))
        if result is None:
            result = out if out is not None else torch.empty(b, part.shape[1], height, width, dtype=part.dtype,
                                                             device=part.device,
                                                             memory_format=_memory_format(x))
            if out is None:
                result.zero_()
        result[:, :, r:r + part.shape[2]] += part
    return result


def _memory_format(x: torch.Tensor):
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() \
        else torch.contiguous_format


class Upsample2x(nn.Module):
    """Nearest-neighbour upsampling (to ``output_size`` when given) followed by a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        if output_size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=output_size, mode="nearest")
        return self.conv(x)

    def forward_banded(self, x: torch.Tensor, band: int | None = None) -> torch.Tensor:
        """2x nearest upsampling + conv in row bands (the upsampled input is never formed in full)."""
        b, c, height, width = x.shape
        out_h = 2 * height
        rows = _band_rows(out_h, band)
        pad = self.conv.padding[0]
        result = torch.empty(b, self.conv.out_channels, out_h, 2 * width, dtype=x.dtype, device=x.device,
                             memory_format=_memory_format(x))
        for r in range(0, out_h, rows):
            lo, hi = max(0, r - pad), min(out_h, r + rows + pad)
            src = torch.arange(lo, hi, device=x.device) // 2
            y = x.index_select(2, src).repeat_interleave(2, dim=3)
            y = F.pad(y, (0, 0, pad - (r - lo), pad - (hi - min(out_h, r + rows))))
            part = F.conv2d(y, self.conv.weight, self.conv.bias, padding=(0, self.conv.padding[1]))
            result[:, :, r:r + part.shape[2]] = part
        return result


class TimestepResBlock(nn.Module):
    """The UNet ResBlock: norm-act-conv, add the projected timestep embedding, norm-act-conv, residual."""

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_channels, out_channels)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb_proj(F.silu(emb)).to(h.dtype)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class GEGLUFeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.proj_in = nn.Linear(dim, dim * mult * 2)
        self.proj_out = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(x * F.gelu(gate))


class MultiHeadAttention(nn.Module):
    """Bias-free q/k/v projections, fused scaled-dot-product attention, biased output projection."""

    def __init__(self, query_dim: int, heads: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Linear(inner, query_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        b, n, _ = x.shape
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in
                   (self.to_q(x), self.to_k(context), self.to_v(context)))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = MultiHeadAttention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = MultiHeadAttention(dim, heads, head_dim, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = GEGLUFeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """SD 2.x spatial transformer of depth 1; projections are linear layers or, with ``use_linear=False`` (as in
    SD 1.x-style configs), 1x1 convs."""

    def __init__(self, channels: int, heads: int, head_dim: int, context_dim: int, use_linear: bool = True):
        super().__init__()
        inner = heads * head_dim
        self.use_linear = use_linear
        self.norm = group_norm(channels, eps=1e-6, fp32=False)
        self.proj_in = nn.Linear(channels, inner) if use_linear else nn.Conv2d(channels, inner, 1)
        self.block = TransformerBlock(inner, heads, head_dim, context_dim)
        self.proj_out = nn.Linear(inner, channels) if use_linear else nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        if not self.use_linear:
            y = self.proj_in(y)
        tokens = y.flatten(2).transpose(1, 2)
        if self.use_linear:
            tokens = self.proj_in(tokens)
        tokens = self.block(tokens, context)
        if self.use_linear:
            tokens = self.proj_out(tokens)
        y = tokens.transpose(1, 2).reshape(b, -1, h, w)
        return (y if self.use_linear else self.proj_out(y)) + x


class ResnetBlock(nn.Module):
    """VAE-decoder ResnetBlock (no timestep)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h

    def forward_banded(self, holder: list[torch.Tensor], band: int | None = None) -> torch.Tensor:
        """Low-memory forward. ``holder`` = [x]; x is taken out of it so that it can be freed inside."""
        x = holder.pop()
        h = norm_act_conv_banded(x, self.norm1, self.conv1, band)
        out = self.skip(x).contiguous(memory_format=_memory_format(h))
        del x
        return norm_act_conv_banded(h, self.norm2, self.conv2, band, out=out)


class SingleHeadSpatialAttention(nn.Module):
    """VAE-decoder mid-block attention: one head over all pixels, 1x1-conv projections."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (conv(y).flatten(2).transpose(1, 2)[:, None] for conv in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)[:, 0]
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))
