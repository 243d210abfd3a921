"""One colour convention for every depth image the package writes: near = warm, far = cool.

A colour map is indexed by *nearness* in [0, 1] (0 = farthest, 1 = nearest), so the default ``Spectral_r`` paints
near surfaces red and far ones blue, as Marigold and Depth Anything do; any matplotlib map name works (``--cmap``).
Inverse depth is already nearness up to scale and shift; metric depth is shown through the reversed map.

Colour mapping is memory-bounded: the map becomes a 256-entry uint8 lookup table applied in row tiles of float32,
so an 8000 x 8000 prediction never needs a full-size float64 array (only the uint8 RGB result is full size).
"""

from __future__ import annotations

import functools

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEFAULT_CMAP = "Spectral_r"
TILE_ROWS = 256


@functools.lru_cache(maxsize=32)
def colour_lut(cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """(256, 3) uint8: the colour of nearness ``i / 255``."""
    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(
            f"unknown colour map {cmap!r}; use a matplotlib name such as Spectral_r, turbo, inferno or viridis"
        ) from None
    lut = (colormap(np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
    lut.setflags(write=False)
    return lut


def value_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) over the finite values (0, 0 when there are none), without copying the array."""
    finite_min, finite_max = np.fmin.reduce(values, axis=None), np.fmax.reduce(values, axis=None)
    if not (np.isfinite(finite_min) and np.isfinite(finite_max)):
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return 0.0, 0.0
        finite_min, finite_max = finite.min(), finite.max()
    return float(finite_min), float(finite_max)


def nearness_index(
    inverse_depth: np.ndarray, lo: float | None = None, hi: float | None = None, tile_rows: int = TILE_ROWS
) -> np.ndarray:
    """uint8 H x W: inverse depth mapped linearly from [lo, hi] (default: its range) to 0..255, in row tiles.

    Non-finite values map to 0 (farthest); a constant map maps to 0."""
    if lo is None or hi is None:
        auto_lo, auto_hi = value_range(inverse_depth)
        lo = auto_lo if lo is None else lo
        hi = auto_hi if hi is None else hi
    out = np.zeros(inverse_depth.shape, dtype=np.uint8)
    if not hi > lo:
        return out
    scale = np.float32(255.0 / (hi - lo))
    offset = np.float32(lo)
    for top in range(0, inverse_depth.shape[0], tile_rows):
        tile = np.asarray(inverse_depth[top : top + tile_rows], dtype=np.float32)
        tile = (tile - offset) * scale
        np.nan_to_num(tile, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(tile, 0.0, 255.0, out=tile)
        out[top : top + tile_rows] = np.rint(tile).astype(np.uint8)
    return out


def colorize(
    inverse_depth: np.ndarray, cmap: str = DEFAULT_CMAP, lo: float | None = None, hi: float | None = None
) -> np.ndarray:
    """uint8 H x W x 3 colour image of an inverse-depth (nearness) map: near = warm with the default map."""
    lut = colour_lut(cmap)
    index = nearness_index(inverse_depth, lo, hi)
    out = np.empty((*index.shape, 3), dtype=np.uint8)
    for top in range(0, index.shape[0], TILE_ROWS):
        out[top : top + TILE_ROWS] = lut[index[top : top + TILE_ROWS]]
    return out


def grey(inverse_depth: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """uint8 H x W grey map: 255 = nearest, 0 = farthest."""
    return nearness_index(inverse_depth, lo, hi)


def depth_colormap(cmap: str = DEFAULT_CMAP):
    """The matplotlib colour map to show *metric depth* with (small depth = near = the map's top end)."""
    colour_lut(cmap)  # validates the name
    return matplotlib.colormaps[cmap].reversed()


def show_depth(
    ax,
    depth: np.ndarray,
    vmin: float,
    vmax: float,
    cmap: str = DEFAULT_CMAP,
    unit: str = "m",
    colorbar: bool = True,
    log: bool = False,
):
    """``imshow`` of metric depth in the package's convention, with a colour bar whose ends read near / far.
    ``log``: colours spaced in log depth, so that a far horizon (hundreds of metres) does not squeeze everything
    within a few metres into the colour of "near" (a linear scale spends the colours where nothing is)."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.ticker import NullFormatter

    vmin, vmax = float(vmin), float(vmax)  # float32 ends drift when the colour bar maps them back
    norm = LogNorm(vmin, vmax) if log and vmin > 0 else Normalize(vmin, vmax)
    image = ax.imshow(depth, cmap=depth_colormap(cmap), norm=norm, interpolation="nearest")
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
        low, high = sorted(bar.ax.get_ylim())  # the ends as drawn: a tick a rounding error outside is dropped
        ends = [min(max(vmin, low), high), max(min(vmax, high), low)]
        bar.set_ticks(ends, labels=[f"near {vmin:.3g} {unit}", f"far {vmax:.3g} {unit}"])
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
        bar.ax.tick_params(labelsize=6)
    return image


def show_inverse_depth(ax, inverse_depth: np.ndarray, cmap: str = DEFAULT_CMAP, colorbar: bool = True):
    """``imshow`` of affine-invariant inverse depth (nearness), colour bar labelled near / far."""
    colour_lut(cmap)  # validates the name
    lo, hi = value_range(inverse_depth)
    image = ax.imshow(inverse_depth, cmap=matplotlib.colormaps[cmap], vmin=lo, vmax=hi, interpolation="nearest")
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
        bar.set_ticks([lo, hi], labels=["far", "near"])
        bar.ax.tick_params(labelsize=6)
    return image


def colour_bar_strip(
    width: int, cmap: str = DEFAULT_CMAP, height: int | None = None, labels: tuple[str, str] = ("far", "near")
) -> np.ndarray:
    """uint8 h x width x 3: a horizontal colour bar (far at the left, near at the right) with labelled ends."""
    height = height or max(18, min(48, width // 24))
    bar_height = max(4, height // 2)
    lut = colour_lut(cmap)
    ramp = lut[np.linspace(0, 255, width).round().astype(np.uint8)]
    strip = Image.new("RGB", (width, height), (255, 255, 255))
    strip.paste(Image.fromarray(np.repeat(ramp[None], bar_height, axis=0)), (0, 0))
    draw = ImageDraw.Draw(strip)
    font_size = max(8, height - bar_height - 2)
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        font = None
    left, right = labels
    draw.text((2, bar_height), left, fill=(0, 0, 0), font=font)
    text_width = draw.textlength(right, font=font)
    draw.text((width - text_width - 2, bar_height), right, fill=(0, 0, 0), font=font)
    return np.asarray(strip)


def side_by_side(
    rgb: np.ndarray,
    inverse_depth: np.ndarray,
    cmap: str = DEFAULT_CMAP,
    gap: int = 8,
    colour_bar: bool = True,
    lo: float | None = None,
    hi: float | None = None,
) -> np.ndarray:
    """uint8: the RGB image | its colour depth (same size), white gap, and a labelled colour bar under both."""
    h, w = inverse_depth.shape
    if rgb.shape[:2] != (h, w):
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
    canvas = np.full((h, 2 * w + gap, 3), 255, dtype=np.uint8)
    canvas[:, :w] = rgb[..., :3]
    canvas[:, w + gap :] = colorize(inverse_depth, cmap, lo, hi)
    if not colour_bar:
        return canvas
    strip = colour_bar_strip(w, cmap)
    under = np.full((strip.shape[0] + 4, canvas.shape[1], 3), 255, dtype=np.uint8)
    under[4:, w + gap :] = strip
    return np.concatenate([canvas, under], axis=0)
