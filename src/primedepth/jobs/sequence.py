"""Image sequences as video input: a folder of frames (PNG, JPEG, TIFF or EXR), in natural order.

VFX and robotics pipelines keep footage as numbered frames (``shot.0001.exr``, ``frame_2.png``, ``frame_10.png``);
natural sorting orders the numbers by value, not by text. EXR frames are read as linear float RGB (or a single
channel as grey) and clipped to [0, 1] before 8-bit quantisation: the model sees what a display would.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..constants import IMAGE_EXTENSIONS

# what a folder of frames may hold (EXR frames are read here, the rest by load_image)
FRAME_EXTENSIONS = IMAGE_EXTENSIONS | {".exr"}
DEFAULT_FPS = 24  # frame rate of an image sequence unless given


def natural_key(name: str) -> list:
    """Sort key that orders the digit runs in ``name`` by value: ``f2`` before ``f10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frames(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, in natural order (hidden files skipped)."""
    files = [
        p
        for p in Path(folder).iterdir()
        if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def _exr_rgb(path: Path) -> np.ndarray:
    from ..outputs.formats import openexr

    with openexr().File(str(path)) as exr:
        channels = exr.channels()
    if "RGB" in channels:
        values = np.asarray(channels["RGB"].pixels, np.float32)
    elif "RGBA" in channels:
        values = np.asarray(channels["RGBA"].pixels, np.float32)[..., :3]
    elif all(c in channels for c in "RGB"):
        values = np.stack([np.asarray(channels[c].pixels, np.float32) for c in "RGB"], axis=-1)
    else:
        values = np.asarray(next(iter(channels.values())).pixels, np.float32)
    if values.ndim == 2:
        values = np.repeat(values[..., None], 3, axis=-1)
    return np.rint(np.clip(np.nan_to_num(values[..., :3]), 0.0, 1.0) * 255).astype(np.uint8)


def read_frame(path: str | Path) -> np.ndarray:
    """One frame as uint8 H x W x 3 RGB (EXIF orientation applied; 16-bit and float frames scaled to 8 bits).
    Raises ``ValueError`` naming the file for an unreadable one."""
    path = Path(path)
    if path.suffix.lower() == ".exr":
        try:
            return _exr_rgb(path)
        except ImportError:
            raise
        except Exception as err:  # OpenEXR raises bare exceptions for broken files
            raise ValueError(f"{path}: not a readable EXR ({err})") from None
    from ..pipelines.image_processor import ImageLoadError, load_image

    try:
        image = load_image(path)
    except ImageLoadError as err:
        raise ValueError(str(err)) from None
    return image.rgb()
