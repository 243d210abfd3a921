"""Robust metric alignment in disparity space: exact recovery, 20 % outliers, and the sparse-depth readers."""

import numpy as np
import pytest
from PIL import Image

from primedepth.alignment import robust_fit_scale_shift
from primedepth.outputs.alignment import SparseDepthError, align_to_metric, read_sparse_depth


def _case(seed=0, h=48, w=64, fraction=0.1):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(1.0, 30.0, (h, w)).astype(np.float32)
    inverse_depth = ((1.0 / gt - 0.02) / 0.25).astype(np.float32)  # exactly affine in disparity
    known = rng.random((h, w)) < fraction
    return gt, inverse_depth, known, rng


def test_exact_scale_and_shift_are_recovered():
    gt, inverse_depth, known, _ = _case()
    sparse = np.where(known, gt, 0.0).astype(np.float32)
    result = align_to_metric(inverse_depth, sparse)
    assert result.fit.scale == pytest.approx(0.25, rel=1e-5) and result.fit.shift == pytest.approx(0.02, abs=1e-6)
    assert result.fit.inliers.all()
    np.testing.assert_allclose(result.depth, gt, rtol=1e-4)
    assert result.abs_rel < 1e-5


def test_twenty_percent_outliers_are_rejected():
    gt, inverse_depth, known, rng = _case(seed=1)
    sparse = np.where(known, gt, 0.0).astype(np.float32)
    outliers = known & (rng.random(gt.shape) < 0.2)
    sparse[outliers] = rng.uniform(0.5, 80.0, outliers.sum())  # gross errors (LiDAR on the wrong surface)
    assert 0.15 < outliers.sum() / known.sum() < 0.25
    result = align_to_metric(inverse_depth, sparse)
    np.testing.assert_allclose(result.depth, gt, rtol=1e-4)
    rejected = ~result.fit.inliers
    assert rejected.sum() >= 0.9 * outliers.sum()  # (a few outliers may land on the truth by chance)
    # the report says over which points its AbsRel is taken, and gives both
    assert result.abs_rel < 1e-4
    every = sparse[known].astype(np.float64)
    expected_all = np.mean(np.abs(gt[known] - every) / every)
    assert result.abs_rel_all == pytest.approx(expected_all, rel=1e-3) and expected_all > 0.05
    assert f"AbsRel {result.abs_rel:.4g} over the inliers, {result.abs_rel_all:.4g} over all points" in result.summary()
    # plain least squares on the same points is far off, which is why the fit is robust
    from primedepth.alignment import fit_scale_shift

    scale, _ = fit_scale_shift(inverse_depth, np.where(sparse > 0, 1.0 / np.maximum(sparse, 1e-6), 0), sparse > 0)
    assert abs(scale - 0.25) > 0.01


def test_noisy_points_give_a_least_squares_fit_with_honest_residuals():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 2000)
    y = 2.0 * x + 0.5 + rng.normal(0, 0.01, x.size)
    fit = robust_fit_scale_shift(x, y)
    assert fit.scale == pytest.approx(2.0, abs=0.003) and fit.shift == pytest.approx(0.5, abs=0.002)
    assert fit.residual_rms == pytest.approx(0.01, rel=0.1)
    assert fit.inliers.mean() > 0.98


def test_readers_npy_kitti_png_and_csv_agree(tmp_path):
    depth = np.zeros((6, 8), np.float32)
    depth[1, 2], depth[4, 7], depth[5, 0] = 3.5, 12.25, 0.75
    np.save(tmp_path / "d.npy", depth)
    Image.fromarray((depth * 256).round().astype(np.uint16)).save(tmp_path / "d.png")
    (tmp_path / "d.csv").write_text("x,y,depth\n2,1,3.5\n7,4,12.25\n0,5,0.75\n")
    for name in ("d.npy", "d.png", "d.csv"):
        np.testing.assert_array_equal(read_sparse_depth(tmp_path / name, (6, 8)), depth)


def test_bad_sparse_files_are_named_errors(tmp_path):
    (tmp_path / "out.csv").write_text("x,y,depth\n20,1,3.5\n")
    with pytest.raises(SparseDepthError, match=r"out\.csv:2: point \(20, 1\) lies outside the 8x6 image"):
        read_sparse_depth(tmp_path / "out.csv", (6, 8))
    np.save(tmp_path / "small.npy", np.ones((3, 3), np.float32))
    with pytest.raises(SparseDepthError, match=r"small\.npy: depth map is 3x3, the image 8x6"):
        read_sparse_depth(tmp_path / "small.npy", (6, 8))
    Image.new("RGB", (8, 6)).save(tmp_path / "rgb.png")
    with pytest.raises(SparseDepthError, match="expected a 16-bit depth PNG"):
        read_sparse_depth(tmp_path / "rgb.png", (6, 8))
    with pytest.raises(SparseDepthError, match="only 0 valid"):
        align_to_metric(np.ones((6, 8), np.float32), np.zeros((6, 8), np.float32))
