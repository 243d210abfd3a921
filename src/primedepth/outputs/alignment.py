"""Metric depth from the affine-invariant prediction and a few metric depths (LiDAR points, a sparse depth image).

The prediction is affine in disparity, so scale and shift are fitted to ``1 / depth`` at the known pixels. The fit
is robust: a least-median-of-squares search over two-point fits finds the model most points agree with (it
tolerates up to half of the points being wrong), then least squares (the evaluation's ``fit_scale_shift``) is
repeated on the inliers. Inliers are points within ``INLIER_SIGMAS`` robust standard deviations of the fit.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..alignment import MIN_DISPARITY, fit_scale_shift

INLIER_SIGMAS = 3.0
KITTI_DEPTH_SCALE = 256.0  # KITTI-style 16-bit depth PNGs store metres * 256, 0 = no measurement
SPARSE_SUFFIXES = (".npy", ".png", ".csv")


class SparseDepthError(ValueError):
    """A sparse-depth file that cannot be used; the message names the file and the problem."""


@dataclass
class RobustFit:
    """``scale * pred + shift ~ target`` on the points in ``inliers``; residuals are on the target's scale."""

    scale: float
    shift: float
    inliers: np.ndarray  # bool, one per fitted point
    residual_rms: float  # over the inliers
    residual_median: float  # of |residual| over all points


@dataclass
class MetricAlignment:
    """Metric depth (float32, metres) from an aligned prediction, and how well the sparse depths agree."""

    depth: np.ndarray
    fit: RobustFit
    points: int
    abs_rel: float  # mean |depth - sparse| / sparse over the inliers
    rmse_m: float  # over the inliers
    abs_rel_all: float = float("nan")  # mean |depth - sparse| / sparse over every sparse point, outliers included

    def summary(self) -> str:
        return (
            f"aligned to {self.points} metric points: scale {self.fit.scale:.5g}, shift {self.fit.shift:.5g} "
            f"(disparity), {int(self.fit.inliers.sum())} inliers ({100 * self.fit.inliers.mean():.1f} %), "
            f"inlier RMSE {self.rmse_m:.4g} m, AbsRel {self.abs_rel:.4g} over the inliers, "
            f"{self.abs_rel_all:.4g} over all points"
        )


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


def align_to_metric(inverse_depth: np.ndarray, sparse_depth: np.ndarray, seed: int = 0) -> MetricAlignment:
    """Metric depth from ``inverse_depth`` and a same-size ``sparse_depth`` (metres, 0 / non-finite = unknown),
    fitted robustly in disparity space; disparities are clipped at the evaluation's minimum before inverting."""
    if sparse_depth.shape != inverse_depth.shape:
        raise SparseDepthError(
            f"sparse depth is {sparse_depth.shape[1]}x{sparse_depth.shape[0]}, the prediction "
            f"{inverse_depth.shape[1]}x{inverse_depth.shape[0]}"
        )
    valid = np.isfinite(sparse_depth) & (sparse_depth > 0)
    if valid.sum() < 2:
        raise SparseDepthError(f"only {int(valid.sum())} valid metric depth(s); at least 2 are needed")
    pred, known = inverse_depth[valid], sparse_depth[valid].astype(np.float64)
    fit = robust_fit_scale_shift(pred, 1.0 / known, seed=seed)
    depth = np.empty(inverse_depth.shape, np.float32)
    for top in range(0, depth.shape[0], 256):  # row tiles: float32 throughout
        rows = inverse_depth[top : top + 256].astype(np.float32) * np.float32(fit.scale) + np.float32(fit.shift)
        depth[top : top + 256] = 1.0 / np.maximum(rows, np.float32(MIN_DISPARITY))
    everywhere = depth[valid].astype(np.float64)
    aligned, truth = everywhere[fit.inliers], known[fit.inliers]
    return MetricAlignment(
        depth,
        fit,
        int(valid.sum()),
        float(np.mean(np.abs(aligned - truth) / truth)),
        float(np.sqrt(np.mean((aligned - truth) ** 2))),
        float(np.mean(np.abs(everywhere - known) / known)),
    )


def read_sparse_depth(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """Sparse metric depths as an H x W float32 map (0 = unknown) from ``.npy`` (metres, 0/NaN holes), a
    KITTI-style 16-bit ``.png`` (metres * 256, 0 holes) or a ``.csv`` of ``x,y,depth`` rows (pixel column, row,
    metres; a header line is allowed)."""
    path = Path(path)
    h, w = shape
    suffix = path.suffix.lower()
    if suffix not in SPARSE_SUFFIXES:
        raise SparseDepthError(f"{path}: unsupported sparse-depth file (use {', '.join(SPARSE_SUFFIXES)})")
    try:
        if suffix == ".npy":
            depth = np.load(path, allow_pickle=False).astype(np.float32)
        elif suffix == ".png":
            with Image.open(path) as image:
                raw = np.asarray(image)
            if raw.dtype != np.uint16 and not (raw.dtype == np.int32 and raw.max(initial=0) < 65536):
                raise SparseDepthError(f"{path}: expected a 16-bit depth PNG (metres * 256), got mode {image.mode}")
            depth = raw.astype(np.float32) / KITTI_DEPTH_SCALE
        else:
            depth = np.zeros(shape, np.float32)
            with open(path, newline="") as f:
                for number, row in enumerate(csv.reader(f), start=1):
                    if not row or row[0].strip().startswith("#"):
                        continue
                    try:
                        x, y, z = (float(v) for v in row[:3])
                    except ValueError:
                        if number == 1:
                            continue  # header
                        raise SparseDepthError(f"{path}:{number}: expected x,y,depth numbers, got {row}") from None
                    col, line = int(round(x)), int(round(y))
                    if not (0 <= col < w and 0 <= line < h):
                        raise SparseDepthError(f"{path}:{number}: point ({x:g}, {y:g}) lies outside the {w}x{h} image")
                    depth[line, col] = z
    except SparseDepthError:
        raise
    except (OSError, ValueError) as err:
        raise SparseDepthError(f"{path}: cannot read sparse depths ({err})") from None
    if depth.ndim != 2 or depth.shape != (h, w):
        raise SparseDepthError(f"{path}: depth map is {'x'.join(map(str, depth.shape[::-1]))}, the image {w}x{h}")
    return np.where(np.isfinite(depth), depth, 0).astype(np.float32)
