"""Metric depth from the affine-invariant prediction and a few metric depths (LiDAR points, a sparse depth image).

The prediction is affine in disparity, so scale and shift are fitted to ``1 / depth`` at the known pixels with the
robust fit of ``primedepth.alignment`` (least median of squares over two-point fits, then least squares on the
inliers), which tolerates up to half of the points being wrong.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..alignment import MIN_DISPARITY, RobustFit, robust_fit_scale_shift

KITTI_DEPTH_SCALE = 256.0  # KITTI-style 16-bit depth PNGs store metres * 256, 0 = no measurement
SPARSE_SUFFIXES = (".npy", ".png", ".csv")


class SparseDepthError(ValueError):
    """A sparse-depth file that cannot be used; the message names the file and the problem."""


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
