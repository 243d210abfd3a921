"""Per-image depth metrics, as Marigold's evaluation defines them (``src/util/metric.py`` of prs-eth/Marigold),
computed on the valid pixels of one image.

The benchmark reports the mean over images of each per-image value, so every function here sees one image only."""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "i_rmse", "silog")
# For each metric, whether a larger value is better (used for ranking and best/worst picks).
HIGHER_IS_BETTER = {name: name.startswith("delta") for name in METRIC_NAMES}


def compute_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """All metrics of ``pred`` against ``gt`` (both metric depth, > 0) over the pixels where ``valid`` is true.

    ``i_rmse`` is the RMSE of inverse depth (1/m). SILog is ``100 * sqrt(mean(d^2) - mean(d)^2)`` with
    ``d = log(pred) - log(gt)`` (the scale-invariant log RMSE of Eigen et al. as Marigold reports it)."""
    if pred.shape != gt.shape or valid.shape != gt.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape}, gt {gt.shape}, valid {valid.shape}")
    p = pred[valid].astype(np.float64)
    g = gt[valid].astype(np.float64)
    if p.size == 0:
        raise ValueError("no valid pixel to evaluate")
    if (p <= 0).any() or (g <= 0).any():
        raise ValueError("metrics need strictly positive depths on valid pixels")
    diff = p - g
    log_diff = np.log(p) - np.log(g)
    # δ on float32 ratios, as Marigold's float32 metrics compute them (a ratio at a threshold counts the same).
    p32, g32 = pred[valid].astype(np.float32), gt[valid].astype(np.float32)
    ratio = np.maximum(p32 / g32, g32 / p32)
    return {
        "abs_rel": float(np.mean(np.abs(diff) / g)),
        "sq_rel": float(np.mean(diff**2 / g)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff**2))),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "i_rmse": float(np.sqrt(np.mean((1.0 / p - 1.0 / g) ** 2))),
        "silog": float(100.0 * np.sqrt(max(np.mean(log_diff**2) - np.mean(log_diff) ** 2, 0.0))),
    }
