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


def release_freed_memory(device: torch.device) -> None:
    """Between the stages of a low-memory CPU forward: hand the heap memory freed by the previous stage back to the
    OS (glibc keeps freed blocks below its mmap threshold, which would add to the next stage's resident peak)."""
    if device.type != "cpu":
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _band_rows(height: int, band: int | None) -> int:
    return max(1, band or max(8, height // 32))


def _channel_stats(x: torch.Tensor, band: int | None = None):
    """Per-channel (mean, sum of squared deviations, count), float64, over row bands: sums of ``x - K`` and
    ``(x - K)^2`` with a per-channel shift ``K`` (the first row's mean) so that the variance does not cancel."""
    b, c, height, width = x.shape
    rows = _band_rows(height, band)
    shift = x[:, :, :1].float().mean(dim=(2, 3), keepdim=True)
    total = torch.zeros(b, c, dtype=torch.float64, device=x.device)
    total_sq = torch.zeros_like(total)
    for r in range(0, height, rows):
        d = x[:, :, r:r + rows].float() - shift
        total += d.sum(dim=(2, 3), dtype=torch.float64)
        total_sq += d.square_().sum(dim=(2, 3), dtype=torch.float64)
    n = height * width
    mean_d = total / n
    return mean_d + shift.double()[:, :, 0, 0], (total_sq - n * mean_d.square()).clamp_min(0), n


def _merge_stats(a, b):
    """Chan et al.'s parallel combination of (mean, M2, count) statistics."""
    if a is None:
        return b
    mean_a, m2_a, n_a = a
    mean_b, m2_b, n_b = b
    n = n_a + n_b
    delta = mean_b - mean_a
    return mean_a + delta * (n_b / n), m2_a + m2_b + delta.square() * (n_a * n_b / n), n


def _affine_from_stats(stats, norm: nn.GroupNorm):
    """GroupNorm ``(scale, shift)`` per channel (fp32, (B, C, 1, 1)) from per-channel (mean, M2, count)."""
    mean_c, m2_c, n = stats
    b, c = mean_c.shape
    g = norm.num_groups
    per = c // g
    mean_g = mean_c.view(b, g, per).mean(-1)
    m2_g = m2_c.view(b, g, per).sum(-1) + n * (mean_c.view(b, g, per) - mean_g[..., None]).square().sum(-1)
    var = m2_g / (n * per)
    rstd = (var + norm.eps).rsqrt().repeat_interleave(per, dim=1)
    weight = norm.weight.double() if norm.weight is not None else 1.0
    bias = norm.bias.double() if norm.bias is not None else 0.0
    scale = rstd * weight
    shift = bias - mean_g.repeat_interleave(per, dim=1) * scale
    return scale.float()[:, :, None, None], shift.float()[:, :, None, None]


def group_norm_affine(x: torch.Tensor, norm: nn.GroupNorm, band: int | None = None):
    """Per-channel ``(scale, shift)`` with ``norm(x) == x * scale + shift`` (fp32, shape (B, C, 1, 1))."""
    return _affine_from_stats(_channel_stats(x, band), norm)


def _conv_rows(y: torch.Tensor, conv: nn.Conv2d, lo: int, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of ``conv(full)`` from the rows ``lo:`` of ``full`` held in ``y`` (stride 1, 'same'
    padding: the conv pads the band with zeros, which is right at the image edges; interior extras are cut)."""
    out = F.conv2d(y, conv.weight, conv.bias, padding=conv.padding)
    return out[:, :, start - lo:stop - lo]


def residual_block_in_place(x: torch.Tensor, norm1: nn.GroupNorm, conv1: nn.Conv2d, norm2: nn.GroupNorm,
                            conv2: nn.Conv2d, band: int | None = None) -> torch.Tensor:
    """``x + conv2(silu(norm2(conv1(silu(norm1(x))))))`` written into ``x``, row band by row band.

    The inner activation is never stored: its rows are computed once for ``norm2``'s statistics and again, with
    ``conv2``'s halo, for the output (one extra ``conv1``). ``_rewrite_in_bands`` keeps the original rows each band
    still needs. Peak memory: ``x`` plus a few bands, instead of two full tensors.
    """
    height = x.shape[2]
    pad1, pad2 = conv1.padding[0], conv2.padding[0]
    rows = max(pad1 + pad2, _band_rows(height, band))
    scale1, shift1 = group_norm_affine(x, norm1, band)

    def inner(xs: torch.Tensor, lo: int, start: int, stop: int) -> torch.Tensor:
        y = F.silu(torch.addcmul(shift1, xs.float(), scale1), inplace=True).to(xs.dtype)
        return _conv_rows(y, conv1, lo, start, stop)

    stats = None
    for r in range(0, height, rows):
        stop = min(height, r + rows)
        lo = max(0, r - pad1)
        stats = _merge_stats(stats, _channel_stats(inner(x[:, :, lo:stop + pad1], lo, r, stop)))
    scale2, shift2 = _affine_from_stats(stats, norm2)

    def output_rows(xs: torch.Tensor, lo: int, start: int, stop: int) -> torch.Tensor:
        h_lo, h_hi = max(0, start - pad2), min(height, stop + pad2)
        h = inner(xs, lo, h_lo, h_hi)
        y = F.silu(torch.addcmul(shift2, h.float(), scale2), inplace=True).to(h.dtype)
        return _conv_rows(y, conv2, h_lo, start, stop)

    return _rewrite_in_bands(x, rows, pad1 + pad2, output_rows, add=True)


def _rewrite_in_bands(t: torch.Tensor, rows: int, halo: int, rows_fn, add: bool = False) -> torch.Tensor:
    """Overwrite (``add``: add to) ``t`` band by band with ``rows_fn(original rows lo:hi of t, lo, start, stop)``,
    where ``lo:hi`` is the band plus ``halo`` rows on each side. The ``halo`` original rows above each band are kept
    aside before the band is overwritten, so every band sees the original ``t``. Needs ``rows >= halo``."""
    height = t.shape[2]
    above = None
    for r in range(0, height, rows):
        stop = min(height, r + rows)
        lo, hi = max(0, r - halo), min(height, stop + halo)
        view = t[:, :, lo:hi] if above is None else torch.cat([above, t[:, :, r:hi]], dim=2)
        part = rows_fn(view, lo, r, stop)
        above = t[:, :, max(0, stop - halo):stop].clone()
        if add:
            t[:, :, r:stop] += part
        else:
            t[:, :, r:stop] = part
    return t


def norm_act_conv_banded(x: torch.Tensor, norm: nn.GroupNorm, conv: nn.Conv2d, band: int | None = None,
                         out: torch.Tensor | None = None) -> torch.Tensor:
    """``conv(silu(norm(x)))`` computed in row bands: the only full-size tensor formed is the output.

    ``conv`` must have stride 1 and symmetric 'same' padding; ``out`` (same shape as the result), when given, is
    added to (in place).
    """
    b, _, height, width = x.shape
    pad = conv.padding[0]
    scale, shift = group_norm_affine(x, norm, band)
    rows = _band_rows(height, band)
    result = out
    for r in range(0, height, rows):
        stop = min(height, r + rows)
        lo, hi = max(0, r - pad), min(height, stop + pad)
        y = F.silu(torch.addcmul(shift, x[:, :, lo:hi].float(), scale), inplace=True).to(x.dtype)
        part = _conv_rows(y, conv, lo, r, stop)
        if result is None:
            result = torch.empty(b, part.shape[1], height, width, dtype=part.dtype, device=part.device,
                                 memory_format=_memory_format(x)).zero_()
        result[:, :, r:stop] += part
    return result


def _compose_1x1(outer: nn.Conv2d, inner: nn.Conv2d) -> nn.Conv2d:
    """One conv equal to ``outer(inner(x))`` for a 1x1 ``outer`` (weights composed in float64)."""
    w_outer = outer.weight.double()[:, :, 0, 0]
    composed = nn.Conv2d(inner.in_channels, outer.out_channels, inner.kernel_size, padding=inner.padding,
                         device=inner.weight.device, dtype=inner.weight.dtype)
    with torch.no_grad():
        composed.weight.copy_(torch.einsum("om,mikl->oikl", w_outer, inner.weight.double()))
        bias = w_outer @ inner.bias.double() if inner.bias is not None else 0.0
        composed.bias.copy_(bias + (outer.bias.double() if outer.bias is not None else 0.0))
    return composed


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

    def rows(self, x: torch.Tensor, start: int, stop: int, conv: nn.Module | None = None) -> torch.Tensor:
        """Rows ``start:stop`` of ``forward(x)`` (2x nearest + conv), computed from ``x`` alone; ``conv`` replaces
        ``self.conv`` (same kernel size and padding), e.g. by ``_compose_1x1``'s composition."""
        conv = conv or self.conv
        out_h = 2 * x.shape[2]
        pad = conv.padding[0]
        lo, hi = max(0, start - pad), min(out_h, stop + pad)
        y = x[:, :, lo // 2:(hi + 1) // 2].repeat_interleave(2, dim=2)[:, :, lo % 2:lo % 2 + hi - lo]
        return _conv_rows(y.repeat_interleave(2, dim=3), conv, lo, start, stop)

    def forward_banded(self, x: torch.Tensor, band: int | None = None) -> torch.Tensor:
        """2x nearest upsampling + conv in row bands (the upsampled input is never formed in full)."""
        b, c, height, width = x.shape
        out_h = 2 * height
        rows = _band_rows(out_h, band)
        result = torch.empty(b, self.conv.out_channels, out_h, 2 * width, dtype=x.dtype, device=x.device,
                             memory_format=_memory_format(x))
        for r in range(0, out_h, rows):
            result[:, :, r:min(out_h, r + rows)] = self.rows(x, r, min(out_h, r + rows))
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

    def forward_banded(self, holder: list[torch.Tensor], band: int | None = None,
                       in_place: bool = False) -> torch.Tensor:
        """Low-memory forward. ``holder`` = [x]; x is taken out of it so that it can be freed (or, with an identity
        skip, overwritten by the output) inside. ``in_place`` (identity skip): the output is written
        into x and the inner activation is never stored (``residual_block_in_place``, one conv more). A block with a
        skip conv always writes its output over ``conv1``'s output instead of forming a third tensor."""
        x = holder.pop()
        if in_place and isinstance(self.skip, nn.Identity):
            return residual_block_in_place(x, self.norm1, self.conv1, self.norm2, self.conv2, band)
        if not isinstance(self.skip, nn.Identity):  # no extra compute: x and conv1's output are the only big tensors
            return self._into_conv1_output(lambda lo, hi: x[:, :, lo:hi], lambda lo, hi: self.skip(x[:, :, lo:hi]),
                                           (x.shape[0], x.shape[2], x.shape[3]), x, band)
        h = norm_act_conv_banded(x, self.norm1, self.conv1, band)
        return norm_act_conv_banded(h, self.norm2, self.conv2, band, out=x)  # identity skip: added into x

    def forward_upsampled_banded(self, low: torch.Tensor, upsample: Upsample2x, band: int | None = None):
        """``self(upsample(low))`` without forming ``upsample(low)`` in full: its rows are computed twice (for
        ``norm1``'s statistics and for ``conv1``) and the skip branch is recomputed from ``low`` through one conv
        (skip and upsampling convs composed). One conv more than the plain forward, two large tensors fewer."""
        skip_conv = upsample.conv if isinstance(self.skip, nn.Identity) else _compose_1x1(self.skip, upsample.conv)
        return self._into_conv1_output(lambda lo, hi: upsample.rows(low, lo, hi),
                                       lambda lo, hi: upsample.rows(low, lo, hi, conv=skip_conv),
                                       (low.shape[0], 2 * low.shape[2], 2 * low.shape[3]), low, band)

    def _into_conv1_output(self, rows_in, rows_skip, shape, like: torch.Tensor, band: int | None) -> torch.Tensor:
        """The block's output from row sources of its input (``rows_in``) and of its skip branch (``rows_skip``),
        written over ``conv1``'s output band by band: the only full-size tensor it creates."""
        b, out_h, out_w = shape
        rows = max(self.conv2.padding[0], _band_rows(out_h, band))
        stats = None
        for r in range(0, out_h, rows):
            stats = _merge_stats(stats, _channel_stats(rows_in(r, min(out_h, r + rows))))
        scale, shift = _affine_from_stats(stats, self.norm1)
        h = torch.empty(b, self.conv1.out_channels, out_h, out_w, dtype=like.dtype, device=like.device,
                        memory_format=_memory_format(like))
        pad = self.conv1.padding[0]
        stats = None
        for r in range(0, out_h, rows):
            stop = min(out_h, r + rows)
            lo, hi = max(0, r - pad), min(out_h, stop + pad)
            y = F.silu(torch.addcmul(shift, rows_in(lo, hi).float(), scale), inplace=True).to(like.dtype)
            h[:, :, r:stop] = _conv_rows(y, self.conv1, lo, r, stop)
            stats = _merge_stats(stats, _channel_stats(h[:, :, r:stop]))
        scale, shift = _affine_from_stats(stats, self.norm2)

        def output_rows(hs: torch.Tensor, lo: int, start: int, stop: int) -> torch.Tensor:
            y = F.silu(torch.addcmul(shift, hs.float(), scale), inplace=True).to(hs.dtype)
            return _conv_rows(y, self.conv2, lo, start, stop) + rows_skip(start, stop)

        return _rewrite_in_bands(h, rows, self.conv2.padding[0], output_rows)


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


def diffusers_resnet_banded(resnet: nn.Module, holder: list[torch.Tensor], band: int | None = None,
                            in_place: bool = False) -> torch.Tensor:
    """Low-memory forward of a diffusers ``ResnetBlock2D`` without timestep, up/downsampling (the VAE's);
    ``in_place`` as in ``ResnetBlock.forward_banded``."""
    if resnet.upsample is not None or resnet.downsample is not None or resnet.time_emb_proj is not None \
            or not isinstance(resnet.nonlinearity, nn.SiLU):
        return resnet(holder.pop(), None)
    x = holder.pop()
    if in_place and resnet.conv_shortcut is None and resnet.output_scale_factor == 1:
        return residual_block_in_place(x, resnet.norm1, resnet.conv1, resnet.norm2, resnet.conv2, band)
    h = norm_act_conv_banded(x, resnet.norm1, resnet.conv1, band)
    out = x if resnet.conv_shortcut is None else resnet.conv_shortcut(x).contiguous(memory_format=_memory_format(h))
    del x
    out = norm_act_conv_banded(h, resnet.norm2, resnet.conv2, band, out=out)
    if resnet.output_scale_factor != 1:
        out /= resnet.output_scale_factor
    return out


def downsample_banded(down: nn.Module, x: torch.Tensor, band: int | None = None) -> torch.Tensor:
    """diffusers ``Downsample2D`` (pad right/bottom by 1, 3x3 conv, stride 2) in output row bands."""
    conv = down.conv
    if getattr(down, "norm", None) is not None or not getattr(down, "use_conv", False) or down.padding != 0 \
            or conv.stride != (2, 2) or conv.kernel_size != (3, 3):
        return down(x)
    b, _, height, width = x.shape
    out_h, out_w = height // 2, width // 2  # (n + 1 - 3) // 2 + 1
    rows = _band_rows(out_h, band)
    result = torch.empty(b, conv.out_channels, out_h, out_w, dtype=x.dtype, device=x.device,
                         memory_format=_memory_format(x))
    for r in range(0, out_h, rows):
        stop = min(out_h, r + rows)
        lo, hi = 2 * r, 2 * stop + 1
        y = F.pad(x[:, :, lo:min(hi, height)], (0, 1, 0, hi - min(hi, height)))
        result[:, :, r:stop] = F.conv2d(y, conv.weight, conv.bias, stride=2)
    return result


def encoder_low_memory(encoder: nn.Module, x: torch.Tensor, band: int | None = None) -> torch.Tensor:
    """diffusers VAE ``Encoder.forward`` with banded ResnetBlocks and downsamplers (same result within rounding)."""
    h = encoder.conv_in(x)
    for i, down in enumerate(encoder.down_blocks):
        for resnet in down.resnets:
            holder = [h]
            del h
            h = diffusers_resnet_banded(resnet, holder, band, in_place=i == 0)  # full resolution: in place
        if down.downsamplers is not None:
            h = downsample_banded(down.downsamplers[0], h, band)
    h = encoder.mid_block(h)
    return encoder.conv_out(encoder.conv_act(encoder.conv_norm_out(h)))
