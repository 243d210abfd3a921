"""What every training dataset yields, and the shared resize / crop / flip / inverse-depth transform."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..constants import IGNORE_LABEL


@dataclass
class RawSample:
    """One training example before augmentation.

    ``depth``: metric depth (``depth_kind="depth"``, metres, > 0 where valid) or an affine-invariant inverse depth
    (``"inverse"``, e.g. Depth Anything pseudo-labels, higher = nearer). ``valid``: where ``depth`` may be used.
    ``labels``: ADE20K-150 indices, 255 = unlabelled (None: no segmentation target, all pixels ignored).
    """

    image: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32
    valid: np.ndarray  # (H, W) bool
    labels: np.ndarray | None
    caption: str
    depth_kind: str = "depth"
    source: str = ""


class DataError(ValueError):
    """A dataset file is missing or malformed; the message names the file."""


def _nearest_indices(n_out: int, scale: float, n_in: int) -> np.ndarray:
    return np.clip(np.floor((np.arange(n_out) + 0.5) / scale).astype(np.int64), 0, n_in - 1)


def prepare_sample(
    raw: RawSample, resolution: tuple[int, int], rng: np.random.Generator | None, hflip: bool = False
) -> dict:
    """Resize so that ``resolution`` is covered (aspect kept; image bilinear, depth/labels/mask nearest), crop
    (random with ``rng``, else centred), flip horizontally with probability 1/2 when ``hflip`` and ``rng``, and
    turn depth into the inverse-depth target with invalid pixels masked (target 0 there)."""
    th, tw = resolution
    h, w = raw.depth.shape
    if raw.image.shape[:2] != (h, w):
        raise DataError(f"{raw.source}: image {raw.image.shape[:2]} and depth {(h, w)} differ in size")
    scale = max(th / h, tw / w)
    nh, nw = max(th, int(round(h * scale))), max(tw, int(round(w * scale)))
    if (nh, nw) != (h, w):
        image = np.asarray(Image.fromarray(raw.image).resize((nw, nh), Image.BILINEAR))
        rows, cols = _nearest_indices(nh, nh / h, h), _nearest_indices(nw, nw / w, w)
        depth, valid = raw.depth[np.ix_(rows, cols)], raw.valid[np.ix_(rows, cols)]
        labels = raw.labels[np.ix_(rows, cols)] if raw.labels is not None else None
    else:
        image, depth, valid, labels = raw.image, raw.depth, raw.valid, raw.labels
    if rng is not None:
        top, left = int(rng.integers(nh - th + 1)), int(rng.integers(nw - tw + 1))
        flip = bool(hflip and rng.random() < 0.5)
    else:
        top, left, flip = (nh - th) // 2, (nw - tw) // 2, False
    sl = (slice(top, top + th), slice(left, left + tw))
    image, depth, valid = image[sl], depth[sl], valid[sl]
    labels = labels[sl] if labels is not None else np.full((th, tw), IGNORE_LABEL, np.uint8)
    if flip:
        image, depth, valid, labels = image[:, ::-1], depth[:, ::-1], valid[:, ::-1], labels[:, ::-1]
    depth = depth.astype(np.float32)
    valid = valid & np.isfinite(depth)
    if raw.depth_kind == "depth":
        valid = valid & (depth > 0)
        target = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0).astype(np.float32)
        metric = np.where(valid, depth, 0.0).astype(np.float32)
    elif raw.depth_kind == "inverse":
        target = np.where(valid, depth, 0.0).astype(np.float32)
        metric = np.zeros_like(target)
    else:
        raise DataError(f"{raw.source}: unknown depth kind {raw.depth_kind!r}")
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 127.5 - 1.0,
        "target": torch.from_numpy(np.ascontiguousarray(target)),
        "valid": torch.from_numpy(np.ascontiguousarray(valid)),
        "labels": torch.from_numpy(np.ascontiguousarray(labels)).long(),
        "depth": torch.from_numpy(np.ascontiguousarray(metric)),  # metric depth for validation metrics, 0 = none
        "caption": raw.caption,
    }


def read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except OSError as err:
        raise DataError(f"{path}: not a readable image ({err})") from None
