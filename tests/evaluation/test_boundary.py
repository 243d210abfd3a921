"""The depth-boundary F1 on maps with known contours."""

import numpy as np
from scipy.ndimage import gaussian_filter

from primedepth.evaluation.boundary import boundary_f1, boundary_f1_at


def box_scene():
    depth = np.full((40, 50), 6.0)
    depth[10:30, 15:35] = 2.0  # a box 3x nearer: its outline is a contour at every threshold up to 3
    return depth


def test_identical_and_scaled_maps_score_one():
    depth = box_scene()
    assert boundary_f1(depth, depth) == 1.0
    assert boundary_f1(7.3 * depth, depth) == 1.0  # scale invariant


def test_counts_by_hand():
    gt = box_scene()
    pred = gt.copy()
    pred[10:30, 15] = 6.0  # the box's left column pushed back: the left edge moves one pixel right
    valid = np.ones(gt.shape, bool)
    # directions right/left/down/up: the left edge (20 pairs) is found one column off -> 0 hits there;
    # the right edge (20) is right; top and bottom edges: 20 gt pairs each, 19 predicted, all hits
    recall = (0 / 20 + 20 / 20 + 19 / 20 + 19 / 20) / 4
    precision = (0 / 20 + 20 / 20 + 19 / 19 + 19 / 19) / 4
    assert boundary_f1_at(pred, gt, valid, 1.1) == np.float64(2 * recall * precision / (recall + precision))


def test_blur_and_invalid_pairs():
    gt = box_scene()
    soft = gaussian_filter(gt, 2.0)
    assert boundary_f1(soft, gt) < 0.5
    flat = np.full(gt.shape, 3.0)
    assert boundary_f1(flat, gt) == 0.0
    valid = np.ones(gt.shape, bool)
    valid[:, :25] = False  # the half with the wrong edge is not scored
    pred = gt.copy()
    pred[10:30, 15] = 6.0
    # only three directions have contours left: the fourth scores 0 in precision and recall, as in Depth Pro's
    assert abs(boundary_f1(pred, gt, valid) - 0.75) < 1e-12
    gt_sky = gt.copy()
    gt_sky[:5] = np.inf  # sky: pairs with it are not counted
    assert boundary_f1(gt, gt_sky) == 1.0
