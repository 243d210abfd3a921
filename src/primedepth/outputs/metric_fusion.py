"""Metric depth from PrimeDepth's affine-invariant inverse depth and a metric prior (a metric depth model's map, or
sparse metric points): the prior gives the scale, PrimeDepth the detail.

1. Global fit: scale and shift of the prediction in disparity, fitted robustly to the prior's ``1 / depth``
   (``alignment.robust_fit_scale_shift``: least median of squares, then least squares on the inliers), so regions
   where the two disagree (a hallucinated object, a wrong sky) do not pull the fit.
2. Optional low-frequency correction (off by default): where the prior's global shape differs from the
   prediction's (a tilted floor, a compressed background), the log ratio ``log(prior disparity / aligned
   disparity)`` on the inliers is averaged over a coarse grid and smoothed (normalised convolution, so outliers and
   holes do not count), and the aligned disparity is multiplied by its exponential. A multiplicative field that
   varies slowly bends the map without moving or softening its edges. It helps when the prior's global shape is
   better than the prediction's; when it is worse, it imports the prior's errors (docs/metric.md measures both).
3. Outputs: metric depth (metres, defined wherever the prediction is, also where the prior has no value), the
   residual against the prior (``prior depth / fused depth - 1`` per pixel), and a per-pixel confidence: the
   agreement of the two after alignment, ``exp(-(log ratio / tolerance)^2 / 2)`` with a fixed relative
   ``tolerance`` (default ``TOLERANCE``, 5 %: a pixel where the two differ by 5 % has confidence 0.61, by 15 %
   0.011); 0 where the prior has no value. The tolerance is absolute on purpose: a prior that disagrees everywhere
   gives low confidence everywhere, instead of being normalised away.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from ..alignment import INLIER_SIGMAS, MIN_DISPARITY, RobustFit, robust_fit_scale_shift

CORRECTION_GRID = 32  # cells along the long side of the coarse grid the correction is estimated on
CORRECTION_SIGMA = 2.0  # smoothing of the correction, in grid cells
TOLERANCE = 0.05  # relative disagreement (|log ratio|) at which the confidence is exp(-1/2)
MAX_FIT_POINTS = 200_000  # dense priors: the global fit uses an even subsample of at most this many pixels


@dataclass
class MetricFusion:
    """The fused map and how it was obtained. ``correction`` is the multiplicative disparity field (None when the
    low-frequency correction is off)."""

    depth: np.ndarray  # float32 metres
    residual: np.ndarray  # float32, prior depth / fused depth - 1 (NaN where the prior has no value)
    confidence: np.ndarray  # float32 in [0, 1]
    fit: RobustFit
    correction: np.ndarray | None
    points: int  # prior pixels used
    agreement: float  # share of those within the tolerance of the fused depth
    abs_rel_to_prior: float  # mean |fused - prior| / prior over all of them
    tolerance: float = TOLERANCE

    def summary(self) -> str:
        bend = ""
        if self.correction is not None:
            bend = f", low-frequency correction up to x{float(np.exp(np.abs(np.log(self.correction)).max())):.3g}"
        return (
            f"fused with {self.points} prior depths: scale {self.fit.scale:.5g}, shift {self.fit.shift:.5g} "
            f"(disparity), {100 * self.agreement:.1f} % agree within the tolerance{bend}, AbsRel to the prior "
            f"{self.abs_rel_to_prior:.4g}, median confidence {float(np.median(self.confidence)):.3g}"
        )

    def metadata(self) -> dict:
        return {
            "scale": self.fit.scale,
            "shift": self.fit.shift,
            "prior_points": self.points,
            "agreement": self.agreement,
            "abs_rel_to_prior": self.abs_rel_to_prior,
            "low_frequency_correction": self.correction is not None,
            "residual": "prior depth / fused depth - 1",
            "confidence": f"exp(-(log(prior / fused) / {self.tolerance:g})^2 / 2); 0 where the prior has no value",
        }


def _smooth_log_ratio(log_ratio: np.ndarray, weight: np.ndarray, grid: int, sigma: float) -> np.ndarray:
    """Weighted mean of ``log_ratio`` on a coarse grid (``grid`` cells on the long side), smoothed by a Gaussian
    of ``sigma`` cells by normalised convolution, upsampled bilinearly to full size. float32."""
    h, w = log_ratio.shape
    scale = grid / max(h, w)
    gh, gw = max(1, round(h * scale)), max(1, round(w * scale))

    def coarse(values: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(values.astype(np.float32), mode="F").resize((gw, gh), Image.BOX))

    numerator = gaussian_filter(coarse(np.where(weight > 0, log_ratio, 0) * weight), sigma, mode="nearest")
    denominator = gaussian_filter(coarse(weight), sigma, mode="nearest")
    field = np.where(denominator > 1e-6, numerator / np.maximum(denominator, 1e-6), 0.0).astype(np.float32)
    return np.asarray(Image.fromarray(field, mode="F").resize((w, h), Image.BILINEAR))


@dataclass(frozen=True)
class LowFrequencyCorrection:
    """The grid the smooth correction is estimated on (cells along the long side) and its smoothing (in cells)."""

    grid: int = CORRECTION_GRID
    sigma: float = CORRECTION_SIGMA


def fuse_with_prior(
    inverse_depth: np.ndarray,
    prior_depth: np.ndarray,
    *,
    low_frequency: bool | LowFrequencyCorrection = False,
    tolerance: float = TOLERANCE,
    seed: int = 0,
) -> MetricFusion:
    """Metric depth (metres) from ``inverse_depth`` (affine-invariant) and a same-size ``prior_depth`` (metres;
    0, negative or non-finite = no value), see the module docstring. ``low_frequency`` switches the smooth
    correction on (for dense priors whose global shape is better than the prediction's; sparse points cannot
    support it): ``True`` on the default grid, a ``LowFrequencyCorrection`` on its own; ``seed`` draws the robust
    fit's samples."""
    if prior_depth.shape != inverse_depth.shape:
        raise ValueError(
            f"the prior is {prior_depth.shape[1]}x{prior_depth.shape[0]}, the prediction "
            f"{inverse_depth.shape[1]}x{inverse_depth.shape[0]}"
        )
    pred = inverse_depth.astype(np.float32)
    valid = np.isfinite(prior_depth) & (prior_depth > 0) & np.isfinite(pred)
    n = int(valid.sum())
    if n < 2:
        raise ValueError(f"only {n} valid prior depth(s); at least 2 are needed")
    target = np.zeros(pred.shape, np.float32)
    target[valid] = 1.0 / prior_depth[valid].astype(np.float32)
    index = np.flatnonzero(valid)
    sample = index[:: max(1, -(-n // MAX_FIT_POINTS))]
    fit = robust_fit_scale_shift(pred.ravel()[sample], target.ravel()[sample], seed=seed)
    aligned = np.maximum(pred * np.float32(fit.scale) + np.float32(fit.shift), np.float32(MIN_DISPARITY))

    correction = None
    if low_frequency:
        grid, sigma = astuple(low_frequency if low_frequency is not True else LowFrequencyCorrection())
        for _ in range(2):  # the second pass re-selects inliers after the first correction
            current = aligned if correction is None else aligned * correction
            log_ratio = np.zeros(pred.shape, np.float32)
            log_ratio[valid] = np.log(target[valid] / current[valid])
            sigma_r = 1.4826 * float(np.median(np.abs(log_ratio[valid] - np.median(log_ratio[valid]))))
            centre = float(np.median(log_ratio[valid]))
            inlier = valid & (np.abs(log_ratio - centre) <= max(INLIER_SIGMAS * sigma_r, 0.1 * tolerance))
            field = _smooth_log_ratio(log_ratio, inlier.astype(np.float32), grid, sigma)
            correction = np.exp(field) if correction is None else correction * np.exp(field)
        aligned = aligned * correction
    depth = (1.0 / aligned).astype(np.float32)

    log_ratio = np.full(pred.shape, np.nan, np.float32)
    log_ratio[valid] = np.log(depth[valid] * target[valid])  # log(fused disparity / prior disparity)
    confidence = np.zeros(pred.shape, np.float32)
    confidence[valid] = np.exp(-0.5 * (log_ratio[valid] / tolerance) ** 2)
    agree = valid & (np.abs(np.nan_to_num(log_ratio)) <= tolerance)
    residual = np.full(pred.shape, np.nan, np.float32)
    residual[valid] = np.exp(-log_ratio[valid]) - 1  # prior depth / fused depth - 1
    known = prior_depth[valid].astype(np.float64)
    abs_rel = float(np.mean(np.abs(depth[valid] - known) / known))
    return MetricFusion(depth, residual, confidence, fit, correction, n, float(agree.sum() / n), abs_rel, tolerance)
