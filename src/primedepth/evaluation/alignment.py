"""Least-squares scale-and-shift alignment of an affine-invariant prediction to metric ground truth.

Zero-shot models predict depth (or inverse depth) only up to an unknown scale and shift, so the benchmark fits both
per image against the ground truth before scoring. Models that predict inverse depth are fitted in disparity space
(to ``1/gt``), which is what their output is affine in."""

from __future__ import annotations

import numpy as np

SPACES = ("depth", "disparity")
MIN_DISPARITY = 1e-3


def fit_scale_shift(pred: np.ndarray, target: np.ndarray, valid: np.ndarray, max_res: int | None = None):
    """``(scale, shift)`` minimising ``sum((scale * pred + shift - target)^2)`` over valid pixels.

    With ``max_res`` the fit uses a nearest-neighbour subsample whose long side is at most ``max_res`` (the
    ETH3D protocol fits at <= 1024 px, which keeps full-resolution DSLR images tractable)."""
    if max_res is not None and max(pred.shape) > max_res:
        factor = max_res / max(pred.shape)
        rows = np.floor(np.arange(round(pred.shape[0] * factor)) / factor).astype(int)
        cols = np.floor(np.arange(round(pred.shape[1] * factor)) / factor).astype(int)
        pred, target, valid = (a[np.ix_(rows, cols)] for a in (pred, target, valid))
    x = pred[valid].astype(np.float64)
    y = target[valid].astype(np.float64)
    if x.size < 2:
        raise ValueError(f"cannot fit scale and shift on {x.size} valid pixel(s)")
    design = np.stack([x, np.ones_like(x)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(scale), float(shift)


def align_to_depth(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray,
    space: str,
    min_depth: float,
    max_depth: float,
    max_res: int | None = None,
) -> np.ndarray:
    """Metric depth from an affine-invariant prediction, aligned to ``gt`` in ``space`` and clipped to the range.

    Disparity space: fit to ``1/gt`` over all valid pixels (an affine-invariant prediction may be negative
    anywhere), clip the aligned disparity at ``1e-3`` and invert. The result is clipped to
    ``[min_depth, max_depth]`` as the dataset protocol asks."""
    if space not in SPACES:
        raise ValueError(f"alignment space must be one of {SPACES}, got {space!r}")
    if space == "depth":
        scale, shift = fit_scale_shift(pred, gt, valid, max_res)
        depth = scale * pred + shift
    else:
        target = np.zeros_like(gt, dtype=np.float64)
        target[valid] = 1.0 / gt[valid]
        scale, shift = fit_scale_shift(pred, target, valid, max_res)
        depth = 1.0 / np.maximum(scale * pred + shift, MIN_DISPARITY)
    return np.clip(depth, min_depth, max_depth).astype(np.float32)
