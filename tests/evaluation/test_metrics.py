import math

import numpy as np
import pytest
from helpers.benchmark_files import smooth_depth

from primedepth.alignment import align_to_depth, fit_scale_shift
from primedepth.evaluation.metrics import compute_metrics


def test_hand_computed_values():
    pred, gt = np.array([[1.0, 2.0, 4.0]]), np.array([[1.0, 1.0, 2.0]])
    m = compute_metrics(pred, gt, np.ones_like(gt, dtype=bool))
    assert m["abs_rel"] == pytest.approx(2 / 3)
    assert m["sq_rel"] == pytest.approx((0 + 1 + 4 / 2) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["rmse_log"] == pytest.approx(math.sqrt(2 * math.log(2) ** 2 / 3))
    assert m["log10"] == pytest.approx(2 * math.log10(2) / 3)
    assert (m["delta1"], m["delta2"], m["delta3"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert m["silog"] == pytest.approx(100 * math.sqrt(2) / 3 * math.log(2))


def test_delta_thresholds_and_valid_mask():
    gt = np.ones((1, 4))
    pred = np.array([[1.2, 1.3, 1.6, 1.9]])  # ratios just under/over 1.25, 1.5625, 1.953
    m = compute_metrics(pred, gt, np.ones_like(gt, dtype=bool))
    assert (m["delta1"], m["delta2"], m["delta3"]) == pytest.approx((0.25, 0.5, 1.0))
    valid = np.array([[True, False, False, False]])
    assert compute_metrics(pred, gt, valid)["delta1"] == 1.0
    with pytest.raises(ValueError, match="no valid pixel"):
        compute_metrics(pred, gt, np.zeros_like(valid))


@pytest.mark.parametrize("space", ["depth", "disparity"])
def test_exact_affine_prediction_scores_perfectly(space):
    gt = smooth_depth(30, 40, 0.5, 9.0, 1)
    valid = np.ones(gt.shape, dtype=bool)
    valid[:3] = False
    pred = 2.5 * (gt if space == "depth" else 1 / gt) - 0.3
    pred[~valid] = 1e6  # junk outside the mask must not matter
    depth = align_to_depth(pred, gt, valid, space, (1e-3, 10.0))
    m = compute_metrics(depth, gt, valid)
    assert m["abs_rel"] == pytest.approx(0, abs=1e-6)
    assert m["delta1"] == 1.0


def test_wrong_space_does_not_score_perfectly():
    gt = smooth_depth(30, 40, 0.5, 9.0, 1)
    valid = np.ones(gt.shape, dtype=bool)
    depth = align_to_depth(1 / gt, gt, valid, "depth", (1e-3, 10.0))
    assert compute_metrics(depth, gt, valid)["abs_rel"] > 0.01


def test_constant_prediction_scores_the_mean():
    gt = np.array([[1.0, 3.0]])
    valid = np.ones_like(gt, dtype=bool)
    depth = align_to_depth(np.full_like(gt, 5.0), gt, valid, "depth", (1e-3, 10.0))
    np.testing.assert_allclose(depth, 2.0, rtol=1e-6)  # least squares of a constant = mean of the GT
    m = compute_metrics(depth, gt, valid)
    assert m["abs_rel"] == pytest.approx((1 / 1 + 1 / 3) / 2, rel=1e-6)
    assert m["delta1"] == 0.0


def test_disparity_is_clipped_then_depth_clipped_to_range():
    gt = np.array([[1.0, 2.0, 4.0]])
    valid = np.array([[True, True, False]])
    # Aligned disparity of the third pixel is negative -> clipped to 1e-3 -> 1000 m -> clipped to max depth.
    depth = align_to_depth(np.array([[1.0, 0.5, -3.0]]), gt, valid, "disparity", (1e-3, 80.0))
    np.testing.assert_allclose(depth, [[1.0, 2.0, 80.0]], rtol=1e-6)


def test_fit_at_reduced_resolution_recovers_exact_affine():
    gt = smooth_depth(300, 500, 1, 50, 2)
    assert fit_scale_shift(3 * gt + 1, gt, np.ones(gt.shape, bool), max_res=64) == pytest.approx((1 / 3, -1 / 3))
