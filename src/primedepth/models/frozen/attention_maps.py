"""Attention processors that return the frozen UNet's attention maps as a by-product of its forward pass.

Self-attention maps: the official code reshapes each query's N key weights into an h x w image, stretches it
bilinearly to (h + 8 - h%8, w + 8 - w%8), average-pools it with kernel (max(1, h//8), max(1, w//8)), resizes it
bilinearly to 8 x 8 and divides by the per-head maximum. Every step is linear along the key axis, so the 64 region
weights of all queries are ``softmax(QK^T / sqrt(d)) @ P`` for a fixed N x 64 matrix ``P = kron(P_h, P_w)``. The fast
path feeds ``P`` as extra value channels into one fused attention call and never forms the N x N map; the
``"naive"`` path reproduces the authors' arithmetic (materialised map, interpolate, pool, interpolate) and exists for
verification and benchmarks.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

STRETCH_MULTIPLE = 8  # the official stretch always pads the key grid up to the next multiple of 8
REGIONS_PER_SIDE = 8  # sqrt(n_sa_maps) of every official config


def _stretch_pool_resize(maps: torch.Tensor, h: int, w: int, side: int = REGIONS_PER_SIDE) -> torch.Tensor:
    """The official key-axis processing on a batch of (h, w) maps -> (side, side) regions, before normalisation."""
    m = STRETCH_MULTIPLE
    maps = F.interpolate(maps, size=(h + m - h % m, w + m - w % m), mode="bilinear")
    kernel = (max(1, h // side), max(1, w // side))
    maps = F.avg_pool2d(maps, kernel_size=kernel, stride=kernel)
    return F.interpolate(maps, size=(side, side), mode="bilinear")


def _linear_resize_matrix(n_in, n_out, dtype, device) -> torch.Tensor:
    """(n_in, n_out) matrix of a 1-D bilinear resize (``align_corners=False``, as ``F.interpolate``): out = in @ M."""
    dst = torch.arange(n_out, dtype=dtype, device=device)
    src = ((dst + 0.5) * (n_in.to(dtype) / n_out.to(dtype)) - 0.5).clamp(min=0)
    first = src.floor()
    frac = src - first
    first = first.long()
    second = torch.minimum(first + 1, n_in - 1)
    rows = torch.arange(n_in, device=device)[:, None]
    return (rows == first).to(dtype) * (1 - frac) + (rows == second).to(dtype) * frac


def axis_matrix(n, side: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """(n, side) matrix of the official processing along one axis (the other axis is left alone): bilinear stretch
    to the next multiple of 8, average pool (kernel = stride = max(1, n // side)), bilinear resize to ``side``.

    Built from index arithmetic rather than by running the ops on an identity, so that ``n`` may also be a traced
    size (a 0-dim tensor during ONNX export with dynamic height and width).
    """
    if not isinstance(n, torch.Tensor):  # (torch.as_tensor would turn a traced size into a constant)
        n = torch.tensor(n, device=device)
    m = STRETCH_MULTIPLE
    stretched = n + m - n % m
    kernel = (n // side).clamp(min=1)
    pooled = stretched // kernel
    slots = torch.arange(stretched, device=device)[:, None] // kernel
    pool = (slots == torch.arange(pooled, device=device)[None, :]).to(dtype) / kernel.to(dtype)
    side_t = torch.as_tensor(side, device=device)
    return (
        _linear_resize_matrix(n, stretched, dtype, device) @ pool @ _linear_resize_matrix(pooled, side_t, dtype, device)
    )


@lru_cache(maxsize=64)
def _cached_axis_matrix(n: int, side: int) -> torch.Tensor:
    return axis_matrix(n, side)


def region_pooling_matrix(h, w, dtype=torch.float32, device=None, side: int = REGIONS_PER_SIDE):
    """P (h*w, side^2) with ``pooled = attention @ P``; key index y*w + x, region index ry*side + rx.

    Both factors are float64 (cached per size; computed inside the graph when the sizes are traced, as in an ONNX
    export with dynamic height and width), the product is cast to ``dtype``.
    """
    if isinstance(h, int) and isinstance(w, int):
        a_h, a_w = _cached_axis_matrix(h, side), _cached_axis_matrix(w, side)
    else:
        a_h, a_w = axis_matrix(h, side, device=device), axis_matrix(w, side, device=device)
    p = (a_h[:, None, :, None] * a_w[None, :, None, :]).reshape(h * w, side * side)  # kron(a_h, a_w)
    return p.to(device=device, dtype=dtype)


def normalise_per_head(pooled: torch.Tensor) -> torch.Tensor:
    """Divide (B, heads, N, 64) maps by their maximum over queries and regions, per head."""
    return pooled / pooled.amax(dim=(-2, -1), keepdim=True)


def to_channels(maps: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, heads, N, K) -> (B, heads*K, h, w) with channel head*K + k."""
    b, heads, n, k = maps.shape
    return maps.permute(0, 1, 3, 2).reshape(b, heads * k, h, w)


def pooled_self_attention(q, k, v, h: int, w: int, side: int = REGIONS_PER_SIDE):
    """Fused attention returning (output, pooled maps (B, heads, N, side^2)) without an N x N tensor.

    ``q, k, v``: (B, heads, N, d). ``P`` rides along as extra value channels; q and k are zero-padded to the same
    width so that every fused kernel (flash included) accepts the call, the softmax scale stays 1/sqrt(d).
    """
    d = q.shape[-1]
    p = region_pooling_matrix(h, w, dtype=v.dtype, device=v.device, side=side)
    # broadcast to v's leading dims by arithmetic: an expand / zeros_like to v's shape is frozen to the traced
    # sizes by the ONNX exporter's shape inference
    values = torch.cat([v, v[..., :1] * 0 + p], dim=-1)
    pad = side * side  # = values.shape[-1] - d, as a constant (exported graphs keep it static)
    q = F.pad(q, (0, pad))
    k = F.pad(k, (0, pad))
    out = F.scaled_dot_product_attention(q, k, values, scale=1.0 / math.sqrt(d))
    return out[..., :d], out[..., d:]


def naive_self_attention(q, k, v, h: int, w: int, side: int = REGIONS_PER_SIDE):
    """Authors' arithmetic: fp32 N x N probabilities, then stretch / pool / resize along the key axis."""
    b, heads, n, d = q.shape
    probs = (q.float() @ k.float().transpose(-1, -2) / math.sqrt(d)).softmax(dim=-1)
    out = probs.to(v.dtype) @ v
    maps = _stretch_pool_resize(probs.reshape(b * heads * n, 1, h, w).to(v.dtype), h, w, side)
    return out, maps.reshape(b, heads, n, side * side)


def cross_attention_with_probs(q, k, v, groups: int | None = None):
    """Explicit probabilities (B, heads, N, 77); the maps are the probabilities themselves, or, when
    ``groups`` (the official ``n_ca_maps``) is smaller than the token count, their means over consecutive tokens."""
    d = q.shape[-1]
    probs = (q.float() @ k.float().transpose(-1, -2) / math.sqrt(d)).softmax(dim=-1).to(v.dtype)
    maps = probs
    if groups is not None and groups != probs.shape[-1]:
        maps = probs.unflatten(-1, (groups, -1)).mean(dim=-1)
    return probs @ v, maps


class MapRecorder:
    """Shared state of the processors: which maps to record, the token grid size, and the recorded maps."""

    def __init__(self):
        self.active = False
        self.hw: tuple[int, int] = (0, 0)
        self.naive = False
        self.regions_per_side = REGIONS_PER_SIDE
        self.token_groups: int | None = None
        self.want_self = True
        self.want_cross = True
        self.self_maps: list[torch.Tensor] = []
        self.cross_maps: list[torch.Tensor] = []

    def start(self, hw, want_self: bool, want_cross: bool):
        self.active, self.hw = True, hw
        self.want_self, self.want_cross = want_self, want_cross
        self.self_maps, self.cross_maps = [], []

    def stop(self):
        self.active = False
        h, w = self.hw
        self_maps = torch.cat(self.self_maps, 1) if self.self_maps else None
        cross_maps = torch.cat(self.cross_maps, 1) if self.cross_maps else None
        return (
            to_channels(normalise_per_head(self_maps), h, w) if self_maps is not None else None,
            to_channels(cross_maps, h, w) if cross_maps is not None else None,
        )


class PreimageAttnProcessor:
    """diffusers attention processor for the frozen UNet that records attention maps when the recorder is active."""

    def __init__(self, recorder: MapRecorder, is_cross: bool):
        self.recorder = recorder
        self.is_cross = is_cross

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        b, n, _ = hidden_states.shape
        q, k, v = (
            t.unflatten(-1, (attn.heads, -1)).transpose(1, 2)
            for t in (attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context))
        )
        rec = self.recorder
        if rec.active and self.is_cross and rec.want_cross:
            out, probs = cross_attention_with_probs(q, k, v, rec.token_groups)
            rec.cross_maps.append(probs)
        elif rec.active and not self.is_cross and rec.want_self:
            fn = naive_self_attention if rec.naive else pooled_self_attention
            out, pooled = fn(q, k, v, *rec.hw, side=rec.regions_per_side)
            rec.self_maps.append(pooled)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(b, n, -1)
        out = attn.to_out[0](out)
        return attn.to_out[1](out)
