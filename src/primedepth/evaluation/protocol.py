"""The per-sample protocol shared by every model: inference resolution, resize to GT, align, clip, score."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .alignment import align_to_depth
from .datasets.base import DatasetConfig, Sample
from .metrics import compute_metrics


def resize_long_side(rgb: np.ndarray, long_side: int | None) -> np.ndarray:
    """The RGB image the model sees: unchanged when ``long_side`` is None, else resized (antialiased bilinear)
    so that its longer side is ``long_side`` pixels (ETH3D 756, DIODE 640 in the protocol)."""
    if long_side is None or max(rgb.shape[:2]) == long_side:
        return rgb
    h, w = rgb.shape[:2]
    factor = long_side / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR, reducing_gap=None))


def resize_to(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``pred`` resized to ``shape`` (bilinear with antialias, so that downsizing averages instead of aliasing)."""
    if pred.shape == tuple(shape):
        return pred.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float32))[None, None]
    out = torch.nn.functional.interpolate(t, size=tuple(shape), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].numpy()


def score_prediction(pred: np.ndarray, sample: Sample, config: DatasetConfig, space: str):
    """``(metrics, aligned_depth)`` of a raw affine-invariant prediction for one sample."""
    if pred.ndim != 2 or not np.isfinite(pred).all():
        raise ValueError(f"prediction for {sample.sample_id} must be a finite 2-D array, got shape {pred.shape}")
    pred = resize_to(pred, sample.depth.shape)
    depth = align_to_depth(
        pred, sample.depth, sample.valid, space, config.min_depth, config.max_depth, config.alignment_max_res
    )
    return compute_metrics(depth, sample.depth, sample.valid), depth


def score_in_own_range(pred: np.ndarray, depth: np.ndarray, valid: np.ndarray | None = None):
    """``(metrics, aligned_depth)`` for data without a dataset config (rendered scenes: training validation and
    ``primedepth demo``): pixels with finite, positive depth (and ``valid``), disparity-space alignment, clipped to
    the sample's own depth range."""
    mask = np.isfinite(depth) & (depth > 0)
    if valid is not None:
        mask &= valid
    if mask.sum() < 2:
        raise ValueError("scoring needs at least two pixels with finite, positive depth")
    gt = np.where(mask, depth, 0.0).astype(np.float32)
    aligned = align_to_depth(pred, gt, mask, "disparity", float(gt[mask].min()), float(gt[mask].max()))
    return compute_metrics(aligned, gt, mask), aligned
