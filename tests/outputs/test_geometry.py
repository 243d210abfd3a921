"""Intrinsics, depth under a stated range, and PLY / GLB files that load back with trimesh."""

import io
import math

import numpy as np
import pytest
import trimesh
from PIL import Image

from primedepth.outputs.geometry import (
    DEFAULT_FOV_DEG,
    EXIF_FOCAL_35MM,
    EXIF_IFD,
    backproject,
    depth_from_range,
    glb_bytes,
    intrinsics_for,
    mesh,
    ply_bytes,
    point_cloud,
)


def _step_scene(h=12, w=16):
    depth = np.full((h, w), 2.0, np.float32)
    depth[:, w // 2 :] = 6.0  # a depth discontinuity down the middle
    rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return depth, rgb


def test_intrinsics_precedence_and_exif_35mm(tmp_path):
    assert intrinsics_for(30, 40, focal_px=55.0).fx == 55.0
    assert intrinsics_for(30, 40, fov_deg=90.0).fx == pytest.approx(20.0)
    default = intrinsics_for(30, 40)
    assert default.fx == pytest.approx(20.0 / math.tan(math.radians(DEFAULT_FOV_DEG / 2)))
    assert "assumed" in default.source
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[EXIF_FOCAL_35MM] = 28
    Image.new("RGB", (40, 30)).save(tmp_path / "photo.jpg", exif=exif)
    k = intrinsics_for(30, 40, image_path=tmp_path / "photo.jpg")
    assert k.fx == pytest.approx(28 * 50.0 / math.hypot(36, 24)) and "EXIF" in k.source
    assert intrinsics_for(30, 40, fov_deg=90.0, image_path=tmp_path / "photo.jpg").fx == pytest.approx(20.0)


def test_depth_from_range_maps_the_extremes_and_is_affine_in_disparity():
    inverse_depth = np.array([[-5.0, -1.5, 2.0]], np.float32)  # any affine-invariant values
    depth = depth_from_range(inverse_depth, 1.0, 10.0)
    np.testing.assert_allclose(depth[0, [0, 2]], [10.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(1 / depth[0, 1], (0.1 + 1.0) / 2, rtol=1e-6)  # midpoint in disparity
    with pytest.raises(ValueError, match="NEAR < FAR"):
        depth_from_range(inverse_depth, 5.0, 2.0)


def test_backprojection_of_a_plane():
    k = intrinsics_for(4, 6, focal_px=3.0)
    points = backproject(np.full((4, 6), 2.0, np.float32), k).reshape(4, 6, 3)
    np.testing.assert_allclose(points[..., 2], 2.0)
    np.testing.assert_allclose(points[1, 4], [(4.5 - 3.0) / 3.0 * 2.0, (1.5 - 2.0) / 3.0 * 2.0, 2.0], rtol=1e-6)


def test_ply_loads_back_with_every_pixel_and_its_colour():
    depth, rgb = _step_scene()
    k = intrinsics_for(*depth.shape, fov_deg=60.0)
    cloud = trimesh.load(io.BytesIO(ply_bytes(point_cloud(depth, rgb, k))), file_type="ply")
    assert len(cloud.vertices) == depth.size
    np.testing.assert_array_equal(np.asarray(cloud.colors)[:, :3], rgb.reshape(-1, 3))
    np.testing.assert_allclose(cloud.vertices, backproject(depth, k), rtol=1e-6)


def test_glb_mesh_has_no_faces_across_the_discontinuity_and_keeps_colours():
    depth, rgb = _step_scene()
    h, w = depth.shape
    surface = mesh(depth, rgb, intrinsics_for(h, w))
    loaded = trimesh.load(io.BytesIO(glb_bytes(surface)), file_type="glb")
    geometry = next(iter(loaded.geometry.values()))
    assert len(geometry.vertices) <= h * w
    assert len(geometry.faces) == 2 * (h - 1) * (w - 2)  # every 2x2 cell but the column straddling the step
    z = geometry.vertices[geometry.faces][..., 2]
    assert (z.max(1) / z.min(1)).max() < 1.01  # no triangle joins the near and the far plane
    # vertex colours are the input pixels' (match vertices back to pixels by position)
    pixels = backproject(depth, intrinsics_for(h, w))
    distance = np.linalg.norm(geometry.vertices[:, None] - pixels[None], axis=-1)
    index = distance.argmin(1)
    assert distance.min(1).max() < 1e-5
    np.testing.assert_array_equal(np.asarray(geometry.visual.vertex_colors)[:, :3], rgb.reshape(-1, 3)[index])
