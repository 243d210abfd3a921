"""Least-squares scale-and-shift alignment of an affine-invariant prediction to metric ground truth, as Marigold's
evaluation does it (``script/depth/eval.py`` and ``src/util/alignment.py`` of prs-eth/Marigold).

Zero-shot models predict depth (or inverse depth) only up to an unknown scale and shift, so the benchmark fits both
per image against the ground truth before scoring. Models that predict inverse depth are fitted in disparity space
(to ``1/gt``), which is what their output is affine in.

``robust_fit_scale_shift`` is the same fit made robust to outliers (least median of squares over two-point fits,
then least squares on the inliers: points within ``INLIER_SIGMAS`` robust standard deviations), for references that
are partly wrong: sparse metric points, a metric prior, a neighbouring tile, the previous video frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SPACES = ("depth", "disparity")
MIN_DISPARITY = 1e-3  # aligned disparity is clipped here before inversion (at most 1000 m)
INLIER_SIGMAS = 3.0  # robust fits: inliers lie within this many robust standard deviations
MIN_SCORED_DEPTH = 1e-6  # every aligned depth is at least this, so that log and ratio metrics are defined


def fit_subsample_columns(shape: tuple[int, ...], max_res: int) -> np.ndarray | None:
    """Columns that enter a fit limited to ``max_res`` pixels, or None when the map is small enough.

    Marigold limits its fit with ``nn.Upsample(scale_factor=min(max_res / (H, W)), mode="nearest")`` applied to a
    ``[1, H, W]`` tensor, which torch reads as (batch, channels, length): only the width is subsampled, every row
    stays (an ETH3D image enters its fit as 4032 x 1024 pixels). The columns are computed by torch's own nearest
    rule on the column indices, so they are the ones Marigold's fit sees."""
    factor = float(np.min(max_res / np.asarray(shape[-2:], dtype=np.float64)))
    if factor >= 1:
        return None
    index = torch.arange(shape[-1], dtype=torch.float32).reshape(1, 1, -1)
    picked = torch.nn.functional.interpolate(index, scale_factor=factor, mode="nearest")
    return picked.reshape(-1).numpy().astype(np.int64)


def fit_scale_shift(pred: np.ndarray, target: np.ndarray, valid: np.ndarray, max_res: int | None = None):
    """``(scale, shift)`` minimising ``sum((scale * pred + shift - target)^2)`` over valid pixels.

    With ``max_res`` the fit uses the columns of :func:`fit_subsample_columns` (the ETH3D protocol's 1024-px fit).
    Like Marigold's fit (numpy's least squares), fewer than two pixels give the minimum-norm solution, and none
    gives ``(0, 0)``, rather than an error: such an image is scored, badly, instead of stopping the run."""
    if max_res is not None and pred.ndim == 2:
        columns = fit_subsample_columns(pred.shape, max_res)
        if columns is not None:
            pred, target, valid = pred[:, columns], target[:, columns], valid[:, columns]
    x = pred[valid].astype(np.float64)
    y = target[valid].astype(np.float64)
    design = np.stack([x, np.ones_like(x)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(scale), float(shift)


def align_to_depth(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray,
    space: str,
    depth_range: tuple[float, float],
    max_res: int | None = None,
    fit_nonpositive: bool = False,
) -> np.ndarray:
    """Metric depth from an affine-invariant prediction, aligned to ``gt`` in ``space`` and clipped to the range.

    Depth space: fit over the valid pixels. Disparity space: fit to ``1/gt`` over the valid pixels whose GT and
    prediction are both positive (a non-positive prediction has no inverse-depth reading and would pull the fit),
    clip the aligned disparity at ``1e-3`` and invert; every pixel is aligned, including those left out of the fit.
    The result is clipped to ``depth_range`` (min, max) and to at least ``1e-6``, as Marigold's evaluation does.

    ``fit_nonpositive`` keeps non-positive predictions in the disparity fit (not Marigold's rule; the miniature
    world's figures are made that way, see ``protocol.score_in_own_range``)."""
    if space not in SPACES:
        raise ValueError(f"alignment space must be one of {SPACES}, got {space!r}")
    # float32 maps, scale and shift, as Marigold's evaluation has them: a pixel whose ratio to the GT lies at a δ
    # threshold then falls on the same side of it.
    pred, gt = np.asarray(pred, dtype=np.float32), np.asarray(gt, dtype=np.float32)
    if space == "depth":
        scale, shift = fit_scale_shift(pred, gt, valid, max_res)
        depth = pred * np.float32(scale) + np.float32(shift)
    else:
        positive = gt > 0
        target = np.zeros_like(gt)
        target[positive] = 1 / gt[positive]
        fitted = valid & positive if fit_nonpositive else valid & positive & (pred > 0)
        scale, shift = fit_scale_shift(pred, target, fitted, max_res)
        depth = 1 / np.maximum(pred * np.float32(scale) + np.float32(shift), np.float32(MIN_DISPARITY))
    depth = np.clip(depth, np.float32(depth_range[0]), np.float32(depth_range[1]))
    return np.maximum(depth, np.float32(MIN_SCORED_DEPTH))


@dataclass
class RobustFit:
    """``scale * pred + shift ~ target`` on the points in ``inliers``; residuals are on the target's scale."""

    scale: float
    shift: float
    inliers: np.ndarray  # bool, one per fitted point
    residual_rms: float  # over the inliers
    residual_median: float  # of |residual| over all points


def robust_fit_scale_shift(
    pred: np.ndarray, target: np.ndarray, iterations: int = 256, refinements: int = 3, seed: int = 0
) -> RobustFit:
    """Robust ``(scale, shift)`` for 1-D ``pred`` and ``target``: least median of squares over random two-point
    fits (deterministic with ``seed``), then least squares on the inliers, ``refinements`` times."""
    pred, target = np.asarray(pred, np.float64).ravel(), np.asarray(target, np.float64).ravel()
    n = pred.size
    if n < 2:
        raise ValueError(f"cannot fit scale and shift on {n} point(s)")
    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, n, size=(iterations, 2))
    dx = pred[pairs[:, 1]] - pred[pairs[:, 0]]
    usable = np.abs(dx) > 1e-12 * max(1.0, float(np.abs(pred).max()))
    best, best_score = fit_scale_shift(pred, target, np.ones(n, bool)), np.inf
    sample = rng.choice(n, size=min(n, 4096), replace=False)  # score on a subsample: cost independent of n
    i, j = pairs[usable, 0], pairs[usable, 1]
    scales = (target[j] - target[i]) / (pred[j] - pred[i])
    shifts = target[i] - scales * pred[i]
    for chunk in range(0, scales.size, 64):  # all candidates of a chunk scored at once; the first best wins
        s, t = scales[chunk : chunk + 64, None], shifts[chunk : chunk + 64, None]
        scores = np.median(np.abs(s * pred[sample] + t - target[sample]), axis=1)
        k = int(np.argmin(scores))
        if scores[k] < best_score:
            best, best_score = (float(s[k, 0]), float(t[k, 0])), scores[k]
    scale, shift = best
    floor = 1e-5 * float(np.median(np.abs(target)))  # float32 inputs: residuals below this are rounding
    inliers = np.ones(n, bool)
    for _ in range(refinements):
        residual = scale * pred + shift - target
        sigma = 1.4826 * np.median(np.abs(residual))
        inliers = np.abs(residual) <= max(INLIER_SIGMAS * sigma, floor)
        if inliers.sum() < 2:
            break
        scale, shift = fit_scale_shift(pred, target, inliers)
    residual = scale * pred + shift - target
    return RobustFit(
        float(scale),
        float(shift),
        inliers,
        float(np.sqrt(np.mean(residual[inliers] ** 2))),
        float(np.median(np.abs(residual))),
    )
