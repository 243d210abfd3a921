"""Tiled high-resolution inference: detail at the image's own resolution on top of a global prediction.

The model sees at most its processing size (1024 px on the long side for PrimeDepth, 64 px for PrimeDepth-mini), so a
large photo's depth map otherwise has the detail of a small one. Here the image is resampled to a *working size*
covered by overlapping tiles of exactly the processing size (the model's native scale), every tile is predicted, and
the tiles are merged onto the whole-image prediction (the *global prior*):

1. layout: ``tiles`` tiles along the long side with at least ``overlap`` of a tile shared between neighbours, the
   starts spread evenly, so the working size is ``tile + (tiles - 1) * stride`` (never above the input's size);
2. alignment: each tile's prediction is affine-invariant on its own, so its scale and shift in disparity are fitted
   robustly (``robust_fit_scale_shift``) to the global prior over the tile, both compared at the prior's resolution;
3. blending: separable raised-cosine windows, normalised so that the weights of all tiles sum to one at every
   pixel (a partition of unity: a constant map stays constant, no pixel counts twice);
4. frequency merge: the result keeps the prior's low frequencies and takes the tiles' high frequencies,
   ``merged = tiles - lowpass(tiles) + lowpass(prior)``, with a Gaussian low-pass as wide as a prior pixel, so
   whatever disagreement is left between tiles (the cause of seams) is replaced by the prior's smooth structure.

Without a prior (``merge_tiles(..., prior=None)``, the naive tiling users do by hand) tiles are chained instead:
each is fitted to the blend of the tiles before it over their overlap. Memory: only the working-size maps (the image,
the prior, the accumulated blend) and the returned full-size map are whole-image tensors; tiles go through the model
in batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..alignment import robust_fit_scale_shift
from .image_processor import resize

OVERLAP = 0.5  # smallest share of a tile overlapping its neighbour
AUTO_MIN_RATIO = 4  # "auto" tiles only images whose long side is at least this many processing sizes
AUTO_TILES = 5  # tiles along the long side under "auto" (see docs/high-resolution.md for the measured choice)
DETAIL_SIGMA = 1.0  # the low-pass's standard deviation, in prior pixels
FIT_ITERATIONS = 64  # random two-point fits of the robust alignment (per tile)


@dataclass(frozen=True)
class TileLayout:
    """Tiles of ``tile`` (h, w) at the working ``size`` (H, W): their top rows and left columns."""

    size: tuple[int, int]
    tile: tuple[int, int]
    tops: tuple[int, ...]
    lefts: tuple[int, ...]

    @classmethod
    def build(cls, input_size: tuple[int, int], tile: int, tiles: int, overlap: float = OVERLAP) -> TileLayout:
        """``tiles`` square tiles of side ``tile`` along the long side of an image of ``input_size``; the short side
        gets as many as it needs. The working size keeps the aspect ratio, is a multiple of 8 and never exceeds the
        input (fewer tiles then)."""
        if tiles < 1:
            raise ValueError(f"tiles must be at least 1, got {tiles}")
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
        h, w = input_size
        stride = max(8, int(tile * (1 - overlap)) // 8 * 8)
        long_side = min(tile + (tiles - 1) * stride, max(max(h, w) // 8 * 8, tile))
        scale = long_side / max(h, w)
        size = tuple(max(8, int(round(s * scale / 8)) * 8) for s in (h, w))
        size = (long_side, size[1]) if h >= w else (size[0], long_side)
        tile_hw = (min(tile, size[0]), min(tile, size[1]))
        return cls(size, tile_hw, _starts(size[0], tile_hw[0], stride), _starts(size[1], tile_hw[1], stride))

    @property
    def grid(self) -> tuple[int, int]:
        return len(self.tops), len(self.lefts)

    def __len__(self) -> int:
        return len(self.tops) * len(self.lefts)

    def boxes(self) -> list[tuple[int, int]]:
        """(top, left) of every tile, row by row."""
        return [(top, left) for top in self.tops for left in self.lefts]

    def axis_weights(self, axis: int) -> torch.Tensor:
        """(tiles on the axis, tile length) raised-cosine windows, normalised so that they sum to one along the
        axis at every position: flat inside a tile, ramping over each overlap, flat at the image's edges."""
        starts, length, extent = (
            (self.tops, self.tile[0], self.size[0])
            if axis == 0
            else (
                self.lefts,
                self.tile[1],
                self.size[1],
            )
        )
        windows = torch.zeros(len(starts), extent, dtype=torch.float64)
        for k, start in enumerate(starts):
            window = torch.ones(length, dtype=torch.float64)
            if k > 0 and (ramp := starts[k - 1] + length - start) > 0:
                window[:ramp] = _raised_cosine(ramp)
            if k + 1 < len(starts) and (ramp := start + length - starts[k + 1]) > 0:
                window[length - ramp :] = torch.minimum(window[length - ramp :], _raised_cosine(ramp).flip(0))
            windows[k, start : start + length] = window
        windows /= windows.sum(dim=0, keepdim=True)
        return torch.stack([windows[k, s : s + length] for k, s in enumerate(starts)]).float()

    def weights(self) -> list[torch.Tensor]:
        """The (h, w) blending weight of every tile (order of ``boxes``); they sum to one over the working size."""
        rows, cols = self.axis_weights(0), self.axis_weights(1)
        return [rows[i][:, None] * cols[j][None, :] for i in range(len(self.tops)) for j in range(len(self.lefts))]


def _starts(extent: int, length: int, stride: int) -> tuple[int, ...]:
    """Evenly spread starts of tiles of ``length`` covering ``extent`` with steps of at most ``stride``."""
    if length >= extent:
        return (0,)
    count = math.ceil((extent - length) / stride) + 1
    return tuple(int(round(k * (extent - length) / (count - 1))) for k in range(count))


def _raised_cosine(n: int) -> torch.Tensor:
    """n samples rising from near 0 to near 1 (never exactly 0: every pixel keeps a positive weight)."""
    x = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return 0.5 - 0.5 * torch.cos(math.pi * x)


def gaussian_lowpass(values: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of an (H, W) map (replicated borders); ``sigma`` in pixels, 0 = unchanged."""
    if sigma <= 0:
        return values
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    out = F.pad(values.float()[None, None], [radius] * 4, mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, -1, 1))
    return F.conv2d(out, kernel.view(1, 1, 1, -1))[0, 0]


def fit_tile(tile: torch.Tensor, target: torch.Tensor, factor: float, mask: torch.Tensor | None = None, seed: int = 0):
    """Robust ``(scale, shift)`` with ``scale * tile + shift ~ target``, both first reduced by ``factor`` (the
    prior's resolution: the tile's extra detail is not in the target); ``mask`` (same size, bool) limits the
    pixels used. Falls back to the identity when fewer than two pixels (or a flat tile) remain."""
    size = tuple(max(1, int(round(s / factor))) for s in tile.shape)
    pred, goal = resize(tile.float(), size).numpy(), resize(target.float(), size).numpy()
    keep = np.ones(size, bool) if mask is None else resize(mask.float(), size).numpy() > 0.999
    pred, goal = pred[keep], goal[keep]
    if pred.size < 2 or float(np.ptp(pred)) <= 1e-12 * max(1.0, float(np.abs(pred).max())):
        return 1.0, float(np.mean(goal) - np.mean(pred)) if pred.size else 0.0
    fit = robust_fit_scale_shift(pred, goal, iterations=FIT_ITERATIONS, seed=seed)
    return fit.scale, fit.shift


def merge_tiles(
    layout: TileLayout,
    tiles: Callable[[], object],
    prior: torch.Tensor | None,
    prior_factor: float,
    detail_sigma: float = DETAIL_SIGMA,
) -> torch.Tensor:
    """The working-size map from tile predictions: ``tiles()`` yields (index, (h, w) prediction) in the order of
    ``layout.boxes()``. With a ``prior`` (working size), each tile is aligned to it and the result takes its low
    frequencies (Gaussian of ``detail_sigma * prior_factor`` working pixels); without, tiles are chained to the
    blend before them over their overlap."""
    boxes, weights = layout.boxes(), layout.weights()
    h, w = layout.tile
    merged = torch.zeros(layout.size, dtype=torch.float32)
    covered = None if prior is not None else torch.zeros(layout.size, dtype=torch.float32)
    for index, prediction in tiles():
        top, left = boxes[index]
        window = (slice(top, top + h), slice(left, left + w))
        prediction = prediction.float().cpu()
        if prior is not None:
            scale, shift = fit_tile(prediction, prior[window], prior_factor, seed=index)
        elif index == 0:
            scale, shift = 1.0, 0.0
        else:
            seen = covered[window]
            overlap = seen > 1e-6
            if overlap.sum() >= 2:
                partial = merged[window] / seen.clamp_min(1e-6)
                scale, shift = fit_tile(prediction, partial, 1.0, mask=overlap, seed=index)
            else:
                scale, shift = 1.0, 0.0
        merged[window] += weights[index] * (prediction * scale + shift)
        if covered is not None:
            covered[window] += weights[index]
    if prior is not None:
        sigma = detail_sigma * prior_factor
        merged += gaussian_lowpass(prior, sigma) - gaussian_lowpass(merged, sigma)
    return merged


def resolve_tiles(tiles: str | int | None, input_size: tuple[int, int], processing_long: int) -> int:
    """Tiles along the long side for the ``tiles`` setting: ``"off"``/None/0 -> 0, ``"auto"`` -> ``AUTO_TILES``
    when the input's long side is at least ``AUTO_MIN_RATIO`` processing sizes, else 0; a number -> itself (0 or
    1 mean off, as does an input no larger than the processing size)."""
    if tiles in (None, "off"):
        return 0
    long_side = max(input_size)
    if tiles == "auto":
        return AUTO_TILES if long_side >= AUTO_MIN_RATIO * processing_long else 0
    try:
        count = int(tiles)
    except (TypeError, ValueError):
        raise ValueError(f"tiles must be 'auto', 'off' or a number of tiles, got {tiles!r}") from None
    if count < 0:
        raise ValueError(f"tiles must be 'auto', 'off' or a number of tiles >= 0, got {count}")
    return count if count > 1 and long_side > processing_long else 0


def tiled_inverse_depth(
    pixels: torch.Tensor,
    global_depth: torch.Tensor,
    predict: Callable[[torch.Tensor, int], torch.Tensor],
    *,
    tile: int,
    tiles: int,
    batch_size: int = 1,
    use_prior: bool = True,
    overlap: float = OVERLAP,
    detail_sigma: float = DETAIL_SIGMA,
    output_size: tuple[int, int] | None = None,
    progress: bool = False,
    description: str = "tiles",
) -> tuple[np.ndarray, dict]:
    """Inverse depth at ``output_size`` (default: the input's) of one image from its tiles.

    pixels: (3, H, W) in [0, 1]; global_depth: the whole-image prediction (h', w') at the processing size;
    predict: ``(B, 3, tile, tile) in [-1, 1], first tile index -> (B, tile, tile)`` (the model on a batch).
    Returns the float32 map and metadata (tile count, grid, tile and working sizes, seconds).
    """
    start = time.perf_counter()
    layout = TileLayout.build(tuple(pixels.shape[-2:]), tile, tiles, overlap)
    work = torch.stack([resize(channel, layout.size) for channel in pixels])  # one channel's intermediate at a time
    prior = resize(global_depth.float().cpu(), layout.size) if use_prior else None
    prior_factor = max(layout.size) / max(global_depth.shape[-2:])
    boxes, (h, w) = layout.boxes(), layout.tile
    bar = tqdm(total=len(layout), disable=not progress, desc=description, unit="tile", leave=False)

    def predictions():
        for first in range(0, len(boxes), max(1, batch_size)):
            batch = boxes[first : first + max(1, batch_size)]
            crops = torch.stack([work[:, top : top + h, left : left + w] for top, left in batch]) * 2.0 - 1.0
            depth = predict(crops, first)
            for k in range(len(batch)):
                yield first + k, depth[k]
            bar.update(len(batch))

    merged = merge_tiles(layout, predictions, prior, prior_factor, detail_sigma)
    bar.close()
    out = resize(merged, output_size or tuple(pixels.shape[-2:])).numpy()
    info = {
        "tiles": len(layout),
        "grid": list(layout.grid),
        "tile_size": list(layout.tile),
        "working_size": list(layout.size),
        "prior": use_prior,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return out, info


def predict_tiles(
    pipe,
    image: torch.Tensor,
    global_depth: torch.Tensor,
    tiles: int,
    context: torch.Tensor,
    *,
    tile: int,
    seed: int | None,
    batch_size: int = 1,
    attention: str = "pooled",
    low_memory: bool = False,
    output_size: tuple[int, int] | None = None,
    progress: bool = False,
    **options,
) -> tuple[np.ndarray, dict]:
    """``tiled_inverse_depth`` with ``pipe``'s model (``options``: its ``use_prior``, ``overlap``,
    ``detail_sigma``): ``context`` (1, 77, C) is the image's caption, ``seed`` the image's noise draws (the same for
    each tile; None: the noise-free variant)."""

    def predict(crops: torch.Tensor, first: int) -> torch.Tensor:
        generators = None if seed is None else [torch.Generator().manual_seed(seed) for _ in range(len(crops))]
        out = pipe.predict_tensor(
            crops, context.expand(len(crops), -1, -1), generator=generators, attention=attention, low_memory=low_memory
        )
        return out.depth.float().mean(dim=1)

    return tiled_inverse_depth(
        image,
        global_depth,
        predict,
        tile=tile,
        tiles=tiles,
        batch_size=batch_size,
        output_size=output_size,
        progress=progress,
        **options,
    )
