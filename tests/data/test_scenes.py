import numpy as np
import pytest

from primedepth.data.scenes import (
    ADE_BALL,
    ADE_BOX,
    ADE_COLUMN,
    ADE_FLOOR,
    ADE_SKY,
    ADE_WALL,
    UNLABELLED,
    render_scene,
)


def test_deterministic_from_seed_and_different_across_seeds():
    a, b = render_scene(3, 64), render_scene(3, 64)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.caption == b.caption
    c = render_scene(4, 64)
    assert not np.array_equal(a.image, c.image)


def test_outputs_shapes_types_and_labels():
    s = render_scene(11, 48, 80)
    assert s.image.shape == (48, 80, 3) and s.image.dtype == np.uint8
    assert s.depth.shape == (48, 80) and s.depth.dtype == np.float32
    assert s.labels.shape == (48, 80) and s.labels.dtype == np.uint8
    assert set(np.unique(s.labels)) <= {0, 2, 3, 5, 41, 42, 82, 119, UNLABELLED}
    assert s.image.std() > 5  # not blank


def test_depth_is_exact_planar_depth_of_the_floor():
    # rays that hit the floor (y = 0): planar depth z satisfies cam_h + z * d_y = 0 with d the ray whose camera-z
    # component is 1; reconstruct the 3D point from depth + intrinsics and check it lies on the floor plane.
    for seed in range(6):
        s = render_scene(seed, 64, indoor=True)
        floor = s.labels == ADE_FLOOR
        assert floor.sum() > 20
        K = s.intrinsics
        v, u = np.nonzero(floor)
        z = s.depth[v, u].astype(np.float64)
        x_cam = (u + 0.5 - K[0, 2]) / K[0, 0] * z
        y_cam = (v + 0.5 - K[1, 2]) / K[1, 1] * z
        pts = np.stack([x_cam, y_cam, z], 1)
        # the floor is a plane in camera coordinates: fit and check residuals are ~0
        A = np.c_[pts, np.ones(len(pts))]
        normal = np.linalg.svd(A)[2][-1]
        residual = np.abs(A @ normal) / np.linalg.norm(normal[:3])
        assert residual.max() < 1e-4


def test_indoor_scene_is_closed_and_outdoor_has_sky_with_infinite_depth():
    indoor = render_scene(5, 64, indoor=True)
    assert np.isfinite(indoor.depth).all() and (indoor.depth > 0).all()
    assert ADE_WALL in indoor.labels
    outdoor = render_scene(5, 64, indoor=False)
    sky = outdoor.labels == ADE_SKY
    assert sky.any() and np.isinf(outdoor.depth[sky]).all() and np.isfinite(outdoor.depth[~sky]).all()
    assert "sky" in outdoor.caption


def test_caption_names_every_object():
    found = set()
    for seed in range(30):
        s = render_scene(seed, 32)
        assert s.caption.startswith(("a room", "an open yard"))
        for obj in s.objects:
            noun = {"box": "box", "sphere": "sphere", "cylinder": "cylinder"}[obj.kind]
            assert f"{obj.colour} " in s.caption and noun in s.caption
            assert obj.label in (ADE_BOX, ADE_BALL, ADE_COLUMN)
            found.add(obj.kind)
            found.add(obj.texture)
        assert "lamp" in s.caption or "light" in s.caption
    assert found >= {"box", "sphere", "cylinder", "plain", "checkered", "striped", "speckled"}


def test_shadows_darken_the_floor_and_nothing_else():
    for seed in range(4):
        lit = render_scene(seed, 96, indoor=True)
        flat = render_scene(seed, 96, indoor=True, shadows=False)
        np.testing.assert_array_equal(lit.depth, flat.depth)
        diff = flat.image.astype(int) - lit.image.astype(int)
        assert (diff >= 0).all()  # shadows only remove light
        shadowed = diff.sum(2) > 30
        assert shadowed.any()
        assert set(np.unique(lit.labels[shadowed])) <= {ADE_FLOOR, ADE_WALL, ADE_BOX, ADE_BALL, ADE_COLUMN}


def test_too_small_raises():
    with pytest.raises(ValueError, match="too small"):
        render_scene(0, 4)
