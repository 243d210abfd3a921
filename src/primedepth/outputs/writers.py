"""Writing predictions to files: raw npy, 16-bit PNG, colour map (near = warm), indexed segmentation PNG.

Every writer goes through ``atomic_write``: the file appears complete under its final name or not at all, so an
interrupted batch never leaves a half-written output that a resumed run would skip.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..utils.atomic import atomic_save_npy, atomic_write
from .colour import DEFAULT_CMAP, colorize
from .formats import FORMATS


def min_max_normalise(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] as float32 (a constant map becomes zeros); one full-size allocation."""
    lo, hi = float(values.min()), float(values.max())
    out = np.subtract(values, lo, dtype=np.float32)
    if hi > lo:
        out *= np.float32(1.0 / (hi - lo))
    else:
        out.fill(0)
    return out


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def npy_bytes(inverse_depth: np.ndarray) -> bytes:
    """float32 ``.npy`` in memory (for result shards and small maps; large files use ``atomic_save_npy``)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(inverse_depth, dtype=np.float32))
    return buf.getvalue()


def png16_bytes(inverse_depth: np.ndarray) -> bytes:
    """Min-max normalised inverse depth as uint16 (0 = farthest, 65535 = nearest), scaled in place."""
    scaled = min_max_normalise(inverse_depth)
    scaled *= 65535
    np.rint(scaled, out=scaled)
    return _png_bytes(Image.fromarray(scaled.astype(np.uint16)))


def color_bytes(inverse_depth: np.ndarray, cmap: str = DEFAULT_CMAP) -> bytes:
    """Colour PNG of the inverse depth, near = warm (memory-bounded lookup table, see ``outputs.colour``)."""
    return _png_bytes(Image.fromarray(colorize(inverse_depth, cmap)))


def segmentation_palette(seed: int = 150) -> list[int]:
    """A fixed palette of 256 random bright colours (class 0 black); the class id is the pixel value."""
    colors = np.random.default_rng(seed).integers(32, 256, size=(256, 3), dtype=np.uint8)
    colors[0] = 0
    return colors.reshape(-1).tolist()


def segmentation_bytes(classes: np.ndarray) -> bytes:
    h, w = classes.shape
    image = Image.frombytes("P", (w, h), np.ascontiguousarray(classes, dtype=np.uint8).tobytes())
    image.putpalette(segmentation_palette())
    return _png_bytes(image)


def write_prediction(
    stem: Path,
    formats: list[str],
    inverse_depth: np.ndarray,
    segmentation: np.ndarray | None = None,
    *,
    cmap: str = DEFAULT_CMAP,
    product_writers: dict | None = None,
    manifest=None,
) -> list[Path]:
    """Write the requested formats next to ``stem`` (``stem`` + suffix of each format); returns the paths.

    ``product_writers``: format -> write(path) for the formats of ``outputs.products`` (3D, float maps, ...).
    ``manifest``: an ``outputs.manifest.OutputManifest`` that records the paths before they are written (raising
    ``OutputClashError``, with nothing written, when one would replace an input or a file we did not write)."""
    writers = {
        "png16": lambda: png16_bytes(inverse_depth),
        "color": lambda: color_bytes(inverse_depth, cmap),
        "seg": lambda: segmentation_bytes(segmentation),
    }
    paths = output_paths(stem, formats)
    if manifest is not None:
        manifest.claim(paths)
    for fmt, path in zip(formats, paths):
        if fmt == "npy":
            atomic_save_npy(path, np.asarray(inverse_depth, dtype=np.float32))
        elif fmt in writers:
            atomic_write(path, writers[fmt]())
        elif product_writers and fmt in product_writers:
            product_writers[fmt](path)
        else:
            raise ValueError(f"format {fmt!r} needs a writer from outputs.products.product_writers")
    return paths


def output_path(stem: Path, fmt: str) -> Path:
    return stem.with_name(stem.name + FORMATS[fmt])


def output_paths(stem: Path, formats: list[str]) -> list[Path]:
    """The file of each format for the output ``stem``."""
    return [output_path(stem, fmt) for fmt in formats]
