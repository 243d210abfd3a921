"""Building blocks of the refiner and the heads, as the official code writes them (norms by ``group_norms``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..banded import (
    affine_from_stats,
    band_rows,
    channel_stats,
    compose_1x1,
    conv_rows,
    memory_format_of,
    merge_stats,
    norm_act_conv_banded,
    residual_block_in_place,
    rewrite_in_bands,
)
from ..group_norms import group_norm


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

    def rows(self, x: torch.Tensor, start: int, stop: int, conv: nn.Module | None = None) -> torch.Tensor:
        """Rows ``start:stop`` of ``forward(x)`` (2x nearest + conv), computed from ``x`` alone; ``conv`` replaces
        ``self.conv`` (same kernel size and padding), e.g. by ``compose_1x1``'s composition."""
        conv = conv or self.conv
        out_h = 2 * x.shape[2]
        pad = conv.padding[0]
        lo, hi = max(0, start - pad), min(out_h, stop + pad)
        y = x[:, :, lo // 2 : (hi + 1) // 2].repeat_interleave(2, dim=2)[:, :, lo % 2 : lo % 2 + hi - lo]
        return conv_rows(y.repeat_interleave(2, dim=3), conv, lo, start, stop)

    def forward_banded(self, x: torch.Tensor, band: int | None = None) -> torch.Tensor:
        """2x nearest upsampling + conv in row bands (the upsampled input is never formed in full)."""
        b, c, height, width = x.shape
        out_h = 2 * height
        rows = band_rows(out_h, band)
        result = torch.empty(
            b,
            self.conv.out_channels,
            out_h,
            2 * width,
            dtype=x.dtype,
            device=x.device,
            memory_format=memory_format_of(x),
        )
        for r in range(0, out_h, rows):
            result[:, :, r : min(out_h, r + rows)] = self.rows(x, r, min(out_h, r + rows))
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
        q, k, v = (
            t.unflatten(-1, (self.heads, -1)).transpose(1, 2)
            for t in (self.to_q(x), self.to_k(context), self.to_v(context))
        )
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

    def forward_banded(
        self, holder: list[torch.Tensor], band: int | None = None, in_place: bool = False
    ) -> torch.Tensor:
        """Low-memory forward. ``holder`` = [x]; x is taken out of it so that it can be freed (or, with an identity
        skip, overwritten by the output) inside. ``in_place`` (identity skip): the output is written
        into x and the inner activation is never stored (``residual_block_in_place``, one conv more). A block with a
        skip conv always writes its output over ``conv1``'s output instead of forming a third tensor."""
        x = holder.pop()
        if in_place and isinstance(self.skip, nn.Identity):
            return residual_block_in_place(x, self.norm1, self.conv1, self.norm2, self.conv2, band)
        if not isinstance(self.skip, nn.Identity):  # no extra compute: x and conv1's output are the only big tensors
            return self._into_conv1_output(
                lambda lo, hi: x[:, :, lo:hi],
                lambda lo, hi: self.skip(x[:, :, lo:hi]),
                (x.shape[0], x.shape[2], x.shape[3]),
                x,
                band,
            )
        h = norm_act_conv_banded(x, self.norm1, self.conv1, band)
        return norm_act_conv_banded(h, self.norm2, self.conv2, band, out=x)  # identity skip: added into x

    def forward_upsampled_banded(self, low: torch.Tensor, upsample: Upsample2x, band: int | None = None):
        """``self(upsample(low))`` without forming ``upsample(low)`` in full: its rows are computed twice (for
        ``norm1``'s statistics and for ``conv1``) and the skip branch is recomputed from ``low`` through one conv
        (skip and upsampling convs composed). One conv more than the plain forward, two large tensors fewer."""
        skip_conv = upsample.conv if isinstance(self.skip, nn.Identity) else compose_1x1(self.skip, upsample.conv)
        return self._into_conv1_output(
            lambda lo, hi: upsample.rows(low, lo, hi),
            lambda lo, hi: upsample.rows(low, lo, hi, conv=skip_conv),
            (low.shape[0], 2 * low.shape[2], 2 * low.shape[3]),
            low,
            band,
        )

    def _into_conv1_output(self, rows_in, rows_skip, shape, like: torch.Tensor, band: int | None) -> torch.Tensor:
        """The block's output from row sources of its input (``rows_in``) and of its skip branch (``rows_skip``),
        written over ``conv1``'s output band by band: the only full-size tensor it creates."""
        b, out_h, out_w = shape
        rows = max(self.conv2.padding[0], band_rows(out_h, band))
        stats = None
        for r in range(0, out_h, rows):
            stats = merge_stats(stats, channel_stats(rows_in(r, min(out_h, r + rows))))
        scale, shift = affine_from_stats(stats, self.norm1)
        h = torch.empty(
            b,
            self.conv1.out_channels,
            out_h,
            out_w,
            dtype=like.dtype,
            device=like.device,
            memory_format=memory_format_of(like),
        )
        pad = self.conv1.padding[0]
        stats = None
        for r in range(0, out_h, rows):
            stop = min(out_h, r + rows)
            lo, hi = max(0, r - pad), min(out_h, stop + pad)
            y = F.silu(torch.addcmul(shift, rows_in(lo, hi).float(), scale), inplace=True).to(like.dtype)
            h[:, :, r:stop] = conv_rows(y, self.conv1, lo, r, stop)
            stats = merge_stats(stats, channel_stats(h[:, :, r:stop]))
        scale, shift = affine_from_stats(stats, self.norm2)

        def output_rows(hs: torch.Tensor, lo: int, start: int, stop: int) -> torch.Tensor:
            y = F.silu(torch.addcmul(shift, hs.float(), scale), inplace=True).to(hs.dtype)
            return conv_rows(y, self.conv2, lo, start, stop) + rows_skip(start, stop)

        return rewrite_in_bands(h, rows, self.conv2.padding[0], output_rows)


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
