"""The row-banded low-memory engine: GroupNorm statistics accumulated over row bands, norm-act-conv and residual
blocks computed band by band (the only full-size tensor formed is the output, or the input overwritten in place),
and the banded forward of the diffusers VAE encoder. Same results as the plain forwards within rounding; used by
``low_memory=True`` (the blocks' ``forward_banded`` methods in ``layers.py``, the heads, the latent noising).
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F
from torch import nn


def release_freed_memory(device: torch.device) -> None:
    """Between the stages of a low-memory CPU forward: hand the heap memory freed by the previous stage back to the
    OS (glibc keeps freed blocks below its mmap threshold, which would add to the next stage's resident peak)."""
    if device.type != "cpu":
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def band_rows(height: int, band: int | None) -> int:
    return max(1, band or max(8, height // 32))


def channel_stats(x: torch.Tensor, band: int | None = None):
    """Per-channel (mean, sum of squared deviations, count), float64, over row bands: sums of ``x - K`` and
    ``(x - K)^2`` with a per-channel shift ``K`` (the first row's mean) so that the variance does not cancel."""
    b, c, height, width = x.shape
    rows = band_rows(height, band)
    shift = x[:, :, :1].float().mean(dim=(2, 3), keepdim=True)
    total = torch.zeros(b, c, dtype=torch.float64, device=x.device)
    total_sq = torch.zeros_like(total)
    for r in range(0, height, rows):
        d = x[:, :, r : r + rows].float() - shift
        total += d.sum(dim=(2, 3), dtype=torch.float64)
        total_sq += d.square_().sum(dim=(2, 3), dtype=torch.float64)
    n = height * width
    mean_d = total / n
    return mean_d + shift.double()[:, :, 0, 0], (total_sq - n * mean_d.square()).clamp_min(0), n


def merge_stats(a, b):
    """Chan et al.'s parallel combination of (mean, M2, count) statistics."""
    if a is None:
        return b
    mean_a, m2_a, n_a = a
    mean_b, m2_b, n_b = b
    n = n_a + n_b
    delta = mean_b - mean_a
    return mean_a + delta * (n_b / n), m2_a + m2_b + delta.square() * (n_a * n_b / n), n


def affine_from_stats(stats, norm: nn.GroupNorm):
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
    return affine_from_stats(channel_stats(x, band), norm)


def conv_rows(y: torch.Tensor, conv: nn.Conv2d, lo: int, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of ``conv(full)`` from the rows ``lo:`` of ``full`` held in ``y`` (stride 1, 'same'
    padding: the conv pads the band with zeros, which is right at the image edges; interior extras are cut)."""
    out = F.conv2d(y, conv.weight, conv.bias, padding=conv.padding)
    return out[:, :, start - lo : stop - lo]


def residual_block_in_place(
    x: torch.Tensor,
    norm1: nn.GroupNorm,
    conv1: nn.Conv2d,
    norm2: nn.GroupNorm,
    conv2: nn.Conv2d,
    band: int | None = None,
) -> torch.Tensor:
    """``x + conv2(silu(norm2(conv1(silu(norm1(x))))))`` written into ``x``, row band by row band.

    The inner activation is never stored: its rows are computed once for ``norm2``'s statistics and again, with
    ``conv2``'s halo, for the output (one extra ``conv1``). ``rewrite_in_bands`` keeps the original rows each band
    still needs. Peak memory: ``x`` plus a few bands, instead of two full tensors.
    """
    height = x.shape[2]
    pad1, pad2 = conv1.padding[0], conv2.padding[0]
    rows = max(pad1 + pad2, band_rows(height, band))
    scale1, shift1 = group_norm_affine(x, norm1, band)

    def inner(xs: torch.Tensor, lo: int, start: int, stop: int) -> torch.Tensor:
        y = F.silu(torch.addcmul(shift1, xs.float(), scale1), inplace=True).to(xs.dtype)
        return conv_rows(y, conv1, lo, start, stop)

    stats = None
    for r in range(0, height, rows):
        stop = min(height, r + rows)
        lo = max(0, r - pad1)
        stats = merge_stats(stats, channel_stats(inner(x[:, :, lo : stop + pad1], lo, r, stop)))
    scale2, shift2 = affine_from_stats(stats, norm2)

    def output_rows(xs: torch.Tensor, lo: int, start: int, stop: int) -> torch.Tensor:
        h_lo, h_hi = max(0, start - pad2), min(height, stop + pad2)
        h = inner(xs, lo, h_lo, h_hi)
        y = F.silu(torch.addcmul(shift2, h.float(), scale2), inplace=True).to(h.dtype)
        return conv_rows(y, conv2, h_lo, start, stop)

    return rewrite_in_bands(x, rows, pad1 + pad2, output_rows, add=True)


def rewrite_in_bands(t: torch.Tensor, rows: int, halo: int, rows_fn, add: bool = False) -> torch.Tensor:
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
        above = t[:, :, max(0, stop - halo) : stop].clone()
        if add:
            t[:, :, r:stop] += part
        else:
            t[:, :, r:stop] = part
    return t


def norm_act_conv_banded(
    x: torch.Tensor, norm: nn.GroupNorm, conv: nn.Conv2d, band: int | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``conv(silu(norm(x)))`` computed in row bands: the only full-size tensor formed is the output.

    ``conv`` must have stride 1 and symmetric 'same' padding; ``out`` (same shape as the result), when given, is
    added to (in place).
    """
    b, _, height, width = x.shape
    pad = conv.padding[0]
    scale, shift = group_norm_affine(x, norm, band)
    rows = band_rows(height, band)
    result = out
    for r in range(0, height, rows):
        stop = min(height, r + rows)
        lo, hi = max(0, r - pad), min(height, stop + pad)
        y = F.silu(torch.addcmul(shift, x[:, :, lo:hi].float(), scale), inplace=True).to(x.dtype)
        part = conv_rows(y, conv, lo, r, stop)
        if result is None:
            result = torch.empty(
                b, part.shape[1], height, width, dtype=part.dtype, device=part.device, memory_format=memory_format_of(x)
            ).zero_()
        result[:, :, r:stop] += part
    return result


def compose_1x1(outer: nn.Conv2d, inner: nn.Conv2d) -> nn.Conv2d:
    """One conv equal to ``outer(inner(x))`` for a 1x1 ``outer`` (weights composed in float64)."""
    w_outer = outer.weight.double()[:, :, 0, 0]
    composed = nn.Conv2d(
        inner.in_channels,
        outer.out_channels,
        inner.kernel_size,
        padding=inner.padding,
        device=inner.weight.device,
        dtype=inner.weight.dtype,
    )
    with torch.no_grad():
        composed.weight.copy_(torch.einsum("om,mikl->oikl", w_outer, inner.weight.double()))
        bias = w_outer @ inner.bias.double() if inner.bias is not None else 0.0
        composed.bias.copy_(bias + (outer.bias.double() if outer.bias is not None else 0.0))
    return composed


def memory_format_of(x: torch.Tensor):
    return (
        torch.channels_last
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        else torch.contiguous_format
    )


def diffusers_resnet_banded(
    resnet: nn.Module, holder: list[torch.Tensor], band: int | None = None, in_place: bool = False
) -> torch.Tensor:
    """Low-memory forward of a diffusers ``ResnetBlock2D`` without timestep, up/downsampling (the VAE's);
    ``in_place`` as in ``ResnetBlock.forward_banded``."""
    if (
        resnet.upsample is not None
        or resnet.downsample is not None
        or resnet.time_emb_proj is not None
        or not isinstance(resnet.nonlinearity, nn.SiLU)
    ):
        return resnet(holder.pop(), None)
    x = holder.pop()
    if in_place and resnet.conv_shortcut is None and resnet.output_scale_factor == 1:
        return residual_block_in_place(x, resnet.norm1, resnet.conv1, resnet.norm2, resnet.conv2, band)
    h = norm_act_conv_banded(x, resnet.norm1, resnet.conv1, band)
    out = x if resnet.conv_shortcut is None else resnet.conv_shortcut(x).contiguous(memory_format=memory_format_of(h))
    del x
    out = norm_act_conv_banded(h, resnet.norm2, resnet.conv2, band, out=out)
    if resnet.output_scale_factor != 1:
        out /= resnet.output_scale_factor
    return out


def downsample_banded(down: nn.Module, x: torch.Tensor, band: int | None = None) -> torch.Tensor:
    """diffusers ``Downsample2D`` (pad right/bottom by 1, 3x3 conv, stride 2) in output row bands."""
    conv = down.conv
    if (
        getattr(down, "norm", None) is not None
        or not getattr(down, "use_conv", False)
        or down.padding != 0
        or conv.stride != (2, 2)
        or conv.kernel_size != (3, 3)
    ):
        return down(x)
    b, _, height, width = x.shape
    out_h, out_w = height // 2, width // 2  # (n + 1 - 3) // 2 + 1
    rows = band_rows(out_h, band)
    result = torch.empty(
        b, conv.out_channels, out_h, out_w, dtype=x.dtype, device=x.device, memory_format=memory_format_of(x)
    )
    for r in range(0, out_h, rows):
        stop = min(out_h, r + rows)
        lo, hi = 2 * r, 2 * stop + 1
        y = F.pad(x[:, :, lo : min(hi, height)], (0, 1, 0, hi - min(hi, height)))
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
