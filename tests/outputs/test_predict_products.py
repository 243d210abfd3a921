"""``primedepth predict`` with the product formats: 3D, float maps, metric alignment, output kind."""

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from primedepth.cli import main
from primedepth.outputs.formats import read_exr, read_pfm, read_tiff
from primedepth.outputs.geometry import depth_from_range


@pytest.fixture
def photo(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    return tmp_path / "x.png"


def _predict(*args):
    return CliRunner().invoke(main, ["predict", *map(str, args), "--model", "tiny-random"])


def test_every_product_format_with_a_stated_depth_range(tmp_path, photo, rgb_image):
    out = tmp_path / "out"
    result = _predict(
        photo, "-o", out, "--format", "npy,ply,glb,tiff,exr,pfm,grey,side,depth", "--depth-range", "1,10", "--fov", "70"
    )
    assert result.exit_code == 0, result.output
    assert "depth assumed to span 1-10 m" in result.output and "--fov 70 deg" in result.output
    inverse_depth = np.load(out / "x.npy")
    for read in (read_tiff(out / "x.tiff"), read_exr(out / "x.exr"), read_pfm(out / "x.pfm")):
        np.testing.assert_array_equal(read, inverse_depth)
    cloud = trimesh.load(out / "x.ply")
    assert len(cloud.vertices) == 75 * 93
    np.testing.assert_array_equal(np.asarray(cloud.colors)[:, :3], rgb_image.reshape(-1, 3))
    np.testing.assert_allclose(cloud.vertices[:, 2], depth_from_range(inverse_depth, 1, 10).reshape(-1), rtol=1e-5)
    surface = next(iter(trimesh.load(out / "x.glb").geometry.values()))
    assert 0 < len(surface.vertices) <= 75 * 93 and len(surface.faces) > 0
    assert Image.open(out / "x_side.png").size[0] > 2 * 93
    assert np.load(out / "x_depth.npy").min() == pytest.approx(1.0, rel=1e-5)


def test_3d_without_a_depth_source_is_refused_not_guessed(tmp_path, photo):
    result = _predict(photo, "-o", tmp_path / "out", "--format", "ply")
    assert result.exit_code == 2
    assert "need(s) depth" in result.output and "--depth-range" in result.output
    assert not (tmp_path / "out").exists()


def test_output_kind_depth_writes_metres(tmp_path, photo):
    out = tmp_path / "out"
    result = _predict(photo, "-o", out, "--format", "npy,tiff", "--output-kind", "depth", "--depth-range", "2,20")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(read_tiff(out / "x.tiff"), depth_from_range(np.load(out / "x.npy"), 2, 20), rtol=1e-6)


def test_align_to_recovers_a_known_metric_depth(tmp_path, photo):
    first = tmp_path / "first"
    assert _predict(photo, "-o", first, "--format", "npy").exit_code == 0
    inverse_depth = np.load(first / "x.npy").astype(np.float64)
    truth = 1.0 / (3.0 * (inverse_depth - inverse_depth.min()) + 0.05)  # metric depth affine in disparity
    rng = np.random.default_rng(0)
    sparse = np.where(rng.random(truth.shape) < 0.05, truth, 0.0)
    outliers = (sparse > 0) & (rng.random(truth.shape) < 0.2)
    sparse[outliers] *= rng.uniform(1.5, 4.0, outliers.sum())
    np.save(tmp_path / "x_sparse.npy", sparse.astype(np.float32))
    out = tmp_path / "out"
    result = _predict(photo, "-o", out, "--format", "npy", "--align-to", tmp_path / "x_sparse.npy")
    assert result.exit_code == 0, result.output
    assert "aligned to" in result.output and "inliers" in result.output
    np.testing.assert_allclose(np.load(out / "x_depth.npy"), truth, rtol=2e-3)


def test_a_bad_sparse_file_fails_that_image_only(tmp_path, photo):
    np.save(tmp_path / "bad.npy", np.ones((3, 3), np.float32))
    result = _predict(photo, "-o", tmp_path / "out", "--align-to", tmp_path / "bad.npy")
    assert result.exit_code == 1
    assert "bad.npy: depth map is 3x3, the image 93x75" in result.output
