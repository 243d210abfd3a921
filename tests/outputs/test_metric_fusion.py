"""Fusing affine-invariant inverse depth with a metric prior: exact recoveries, outliers, the low-frequency
correction, edges and the confidence, on synthetic maps with known answers."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from primedepth.outputs.metric_fusion import fuse_with_prior


def scene(h=96, w=128):
    """Metric depth of a slanted floor-like ramp (2..8 m) with a box 1.5 m in front of it (sharp edges)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = 2.0 + 6.0 * (1 - y / (h - 1))
    depth[30:60, 40:80] = 1.5
    return depth.astype(np.float32)


def affine_inverse(depth, scale=0.37, shift=-0.2):
    return (scale * (1.0 / depth) + shift).astype(np.float32)


def test_an_affine_prediction_and_an_exact_prior_recover_the_depth():
    depth = scene()
    for low_frequency in (False, True):
        fused = fuse_with_prior(affine_inverse(depth), depth, low_frequency=low_frequency)
        np.testing.assert_allclose(fused.depth, depth, rtol=1e-4)
        np.testing.assert_allclose(fused.residual, 0, atol=1e-4)
        assert fused.confidence.min() > 0.999
        assert fused.agreement == 1.0 and fused.abs_rel_to_prior < 1e-4
    np.testing.assert_allclose([fused.fit.scale, fused.fit.shift], [1 / 0.37, 0.2 / 0.37], rtol=1e-4)


def test_outliers_do_not_move_the_fit_and_lose_confidence():
    depth = scene()
    prior = depth.copy()
    wrong = np.zeros(depth.shape, bool)
    wrong[:, :45] = True  # 35 % of the prior is 3x too far (a wrong region)
    prior[wrong] *= 3.0
    fused = fuse_with_prior(affine_inverse(depth), prior, low_frequency=False)
    np.testing.assert_allclose(fused.depth, depth, rtol=1e-4)
    assert fused.confidence[wrong].max() < 0.01 and fused.confidence[~wrong].min() > 0.999
    np.testing.assert_allclose(fused.residual[wrong], 2.0, rtol=1e-3)
    assert abs(fused.agreement - (~wrong).mean()) < 1e-6


def test_sparse_points_and_holes():
    depth = scene()
    prior = np.zeros_like(depth)
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, depth.shape[0], 50), rng.integers(0, depth.shape[1], 50)
    prior[rows, cols] = depth[rows, cols]
    prior[0, 0] = np.nan
    fused = fuse_with_prior(affine_inverse(depth), prior, low_frequency=False)
    np.testing.assert_allclose(fused.depth, depth, rtol=1e-4)  # everywhere, not only at the points
    assert fused.confidence[prior == 0].max() == 0 and np.isnan(fused.residual[prior == 0]).all()
    with pytest.raises(ValueError, match="only 1 valid prior"):
        fuse_with_prior(affine_inverse(depth), np.where(np.arange(depth.size).reshape(depth.shape) == 5, 2.0, 0))
    with pytest.raises(ValueError, match="the prior is 96x128, the prediction 128x96"):
        fuse_with_prior(affine_inverse(depth), depth.T)


def test_low_frequency_correction_bends_the_map_to_the_priors_shape_without_blurring_it():
    depth = scene()
    h, w = depth.shape
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    bend = np.exp(0.25 * x)  # the prior's disparity differs by a smooth left-right factor (0.78..1.28)
    prior = depth / bend
    pred = affine_inverse(depth)
    plain = fuse_with_prior(pred, prior, low_frequency=False)
    bent = fuse_with_prior(pred, prior, low_frequency=True)
    err_plain = np.abs(plain.depth / prior - 1)
    err_bent = np.abs(bent.depth / prior - 1)
    assert err_plain.mean() > 0.06 and err_bent.mean() < 0.012  # follows the prior's global shape
    assert np.median(bent.confidence) > np.median(plain.confidence) + 0.3
    # the box's edge stays one pixel wide: the depth jumps by the full step between two neighbours
    row = bent.depth[45]
    assert row[39] / row[40] > 0.9 * (prior[45, 39] / prior[45, 40])
    assert np.abs(row[41:79] / prior[45, 41:79] - 1).max() < 0.02


def test_detail_comes_from_the_prediction_scale_from_a_blurred_prior():
    depth = scene()
    prior = gaussian_filter(depth, 3.0)  # a smooth metric model: right scale, soft edges
    fused = fuse_with_prior(affine_inverse(depth), prior, low_frequency=True)
    edges = np.zeros(depth.shape, bool)
    edges[26:64, 36:84] = True
    edges[34:56, 44:76] = False  # a band around the box's outline
    err_prior = np.abs(prior / depth - 1)[edges].mean()
    err_fused = np.abs(fused.depth / depth - 1)[edges].mean()
    assert err_fused < 0.3 * err_prior
    assert np.abs(fused.depth / depth - 1).mean() < 0.03
    assert fused.confidence[edges].mean() < fused.confidence[~edges].mean()  # the members disagree at the edges
