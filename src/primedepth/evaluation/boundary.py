"""Depth-boundary F1: how well a depth map's occluding contours match the ground truth's (the scale-invariant
boundary F1 of the Depth Pro paper, computed from ground-truth depth).

Between two 4-neighbours i and j there is an occluding contour at threshold t when j is farther than i by more than
the factor t (``depth_j / depth_i > t``). Contours are found in the prediction and in the ground truth for each of
the four neighbour directions; precision and recall are averaged over the directions, F1 is taken per threshold and
averaged over ``N`` thresholds evenly spaced in [``t_min``, ``t_max``] (1.05 .. 1.25), weighted by the threshold.
Being ratios, the measure is invariant to the depth's scale. Pairs with a pixel outside ``valid`` are not counted;
a direction without contours in either map scores 0 in precision and recall (as Depth Pro's evaluation does).
"""

from __future__ import annotations

import numpy as np


def _contours(depth: np.ndarray, valid: np.ndarray, t: float) -> list[np.ndarray]:
    """Per direction (right, left, down, up neighbour farther by > t), bool maps over the neighbour pairs."""
    with np.errstate(divide="ignore", invalid="ignore"):
        horizontal = valid[:, 1:] & valid[:, :-1]
        vertical = valid[1:, :] & valid[:-1, :]
        return [
            horizontal & (depth[:, 1:] / depth[:, :-1] > t),
            horizontal & (depth[:, :-1] / depth[:, 1:] > t),
            vertical & (depth[1:, :] / depth[:-1, :] > t),
            vertical & (depth[:-1, :] / depth[1:, :] > t),
        ]


def boundary_f1_at(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, t: float) -> float:
    """F1 of the occluding contours at one threshold (precision and recall averaged over the four directions)."""
    predicted, truth = _contours(pred, valid, t), _contours(gt, valid, t)
    hits = [np.count_nonzero(p & g) for p, g in zip(predicted, truth)]
    recall = np.mean([h / max(np.count_nonzero(g), 1) for h, g in zip(hits, truth)])
    precision = np.mean([h / max(np.count_nonzero(p), 1) for h, p in zip(hits, predicted)])
    return 0.0 if recall + precision == 0 else float(2 * recall * precision / (recall + precision))


def boundary_f1(
    pred_depth: np.ndarray,
    gt_depth: np.ndarray,
    valid: np.ndarray | None = None,
    t_min: float = 1.05,
    t_max: float = 1.25,
    n: int = 10,
) -> float:
    """Scale-invariant boundary F1 of ``pred_depth`` against ``gt_depth`` (both depth, same shape), see the module
    docstring. ``valid`` defaults to the pixels where both are finite and positive."""
    pred, gt = pred_depth.astype(np.float64), gt_depth.astype(np.float64)
    ok = np.isfinite(pred) & np.isfinite(gt) & (pred > 0) & (gt > 0)
    valid = ok if valid is None else ok & valid
    thresholds = np.linspace(t_min, t_max, n)
    weights = thresholds / thresholds.sum()
    return float(sum(w * boundary_f1_at(pred, gt, valid, t) for t, w in zip(thresholds, weights)))
