"""The per-sample protocol shared by every model: inference resolution, resize to GT, align, clip, score (rule by rule
as Marigold's ``script/depth/eval.py``; docs/evaluation.md lists the rules)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..alignment import align_to_depth
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


def same_aspect(shape: tuple[int, int], target: tuple[int, int]) -> bool:
    """Whether ``shape`` is ``target`` scaled by one factor, up to rounding each side to whole pixels (a map
    predicted at a lower processing resolution, e.g. 504 x 756 for a 4032 x 6048 ETH3D image)."""
    (h, w), (th, tw) = shape, target
    return abs(h - th * w / tw) <= 1 or abs(w - tw * h / th) <= 1


def score_prediction(
    pred: np.ndarray,
    sample: Sample,
    config: DatasetConfig,
    space: str,
    *,
    source: str | None = None,
    resize_predictions: bool = False,
):
    """``(metrics, aligned_depth)`` of a raw affine-invariant prediction for one sample.

    A prediction smaller or larger than the GT is resized to it (bilinear with antialias, as Marigold's pipeline
    brings its own output to the input size); one whose aspect ratio differs from the GT's beyond rounding (an
    uncropped 375 x 1242 KITTI map for the 352 x 1216 benchmark crop) is refused, naming ``source``, unless
    ``resize_predictions``. Marigold's evaluation itself accepts only predictions at the GT's size."""
    source = source or f"prediction for {sample.sample_id}"
    if pred.ndim != 2 or not np.isfinite(pred).all():
        raise ValueError(f"{source}: must be a finite 2-D array, got shape {pred.shape}")
    gt_shape = sample.depth.shape
    if not resize_predictions and not same_aspect(pred.shape, gt_shape):
        raise ValueError(
            f"{source}: prediction is {pred.shape[0]}x{pred.shape[1]}, ground truth is {gt_shape[0]}x{gt_shape[1]} "
            "(another aspect ratio; --resize-predictions resizes it anyway)"
        )
    pred = resize_to(pred, gt_shape)
    depth = align_to_depth(
        pred, sample.depth, sample.valid, space, (config.min_depth, config.max_depth), config.alignment_max_res
    )
    return compute_metrics(depth, sample.depth, sample.valid), depth


def score_in_own_range(pred: np.ndarray, depth: np.ndarray, valid: np.ndarray | None = None):
    """``(metrics, aligned_depth)`` for data without a dataset config (rendered scenes: training validation and
    ``primedepth demo``): pixels with finite, positive depth (and ``valid``), disparity-space alignment over all of
    them whatever the prediction's sign, clipped to the sample's own depth range.

    The fit keeps non-positive predictions, unlike Marigold's (and the benchmark protocol's): PrimeDepth-mini puts
    far pixels at or below zero inverse depth, and its figures (docs/mini-model.md, the README) are fitted over every
    pixel; leaving those pixels out would move them (δ1 0.912 -> 0.870, AbsRel 0.082 -> 0.110 on the demo's 200
    held-out scenes)."""
    mask = np.isfinite(depth) & (depth > 0)
    if valid is not None:
        mask &= valid
    if mask.sum() < 2:
        raise ValueError("scoring needs at least two pixels with finite, positive depth")
    gt = np.where(mask, depth, 0.0).astype(np.float32)
    low, high = float(gt[mask].min()), float(gt[mask].max())
    aligned = align_to_depth(pred, gt, mask, "disparity", (low, high), fit_nonpositive=True)
    return compute_metrics(aligned, gt, mask), aligned
