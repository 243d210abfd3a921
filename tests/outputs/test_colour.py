"""One colour convention (near = warm), the lookup-table colour mapping and its memory bound."""

import io
import tracemalloc

import matplotlib
import numpy as np
import pytest
from PIL import Image

from primedepth.outputs.colour import colorize, colour_bar_strip, colour_lut, grey, nearness_index, side_by_side
from primedepth.outputs.writers import color_bytes


def test_near_is_warm_and_far_is_cool():
    ramp = np.linspace(-5.0, 2.0, 64, dtype=np.float32)[None].repeat(4, 0)  # inverse depth: right = nearest
    rgb = colorize(ramp).astype(int)
    near, far = rgb[0, -1], rgb[0, 0]
    assert near[0] > near[2] + 60  # red dominates at the near end
    assert far[2] > far[0] + 40  # blue dominates at the far end
    png = np.asarray(Image.open(io.BytesIO(color_bytes(ramp))))
    np.testing.assert_array_equal(png, rgb)


def test_lut_colours_match_matplotlib_at_the_quantised_nearness():
    values = np.random.default_rng(0).normal(size=(37, 53)).astype(np.float32)
    index = nearness_index(values)
    t = (values - values.min()) / (values.max() - values.min())
    np.testing.assert_array_equal(index, np.rint(t * 255).astype(np.uint8))
    expected = (matplotlib.colormaps["turbo"](index / 255.0)[..., :3] * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(colorize(values, "turbo"), expected)
    np.testing.assert_array_equal(grey(values), index)


def test_non_finite_and_constant_maps_do_not_break():
    values = np.array([[np.nan, 1.0], [2.0, np.inf]], dtype=np.float32)
    np.testing.assert_array_equal(nearness_index(values), [[0, 0], [255, 255]])
    np.testing.assert_array_equal(nearness_index(np.ones((3, 3), np.float32)), np.zeros((3, 3)))


def test_unknown_colour_map_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown colour map 'nope'"):
        colour_lut("nope")


def test_colour_mapping_never_allocates_a_full_size_float_array():
    values = np.random.default_rng(1).random((2048, 2048), dtype=np.float32)
    tracemalloc.start()
    colorize(values)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    pixels = values.size
    # the uint8 RGB result (3 B/px) and uint8 index (1 B/px) plus row tiles; one float64 copy alone is 8 B/px
    assert peak < 4 * pixels + 16 * 2**20, peak / pixels


def test_side_by_side_has_the_rgb_the_colour_map_and_a_labelled_bar():
    rgb = np.random.default_rng(2).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    inverse_depth = np.tile(np.linspace(0, 1, 60, dtype=np.float32), (40, 1))
    out = side_by_side(rgb, inverse_depth, gap=8)
    np.testing.assert_array_equal(out[:40, :60], rgb)
    np.testing.assert_array_equal(out[:40, 68:], colorize(inverse_depth))
    strip = colour_bar_strip(60)
    assert out.shape == (40 + strip.shape[0] + 4, 128, 3)
    # the bar runs far (left) to near (right) and carries dark label text under it
    np.testing.assert_array_equal(strip[0, 0], colour_lut()[0])
    np.testing.assert_array_equal(strip[0, -1], colour_lut()[255])
    assert (strip[strip.shape[0] // 2 + 2 :] < 100).any()


def test_log_depth_colours_spread_a_far_horizon_and_keep_both_end_labels():
    """A rendered outdoor scene: 1.1 m to a 416 m horizon. On a linear scale everything within 10 m takes the first
    2 % of the colours; on the log scale the demo uses, a third of them. Both ends stay labelled (float32 ends)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from primedepth.outputs.colour import show_depth

    depth = np.geomspace(1.1, 416.0, 64).astype(np.float32).reshape(8, 8)
    fig = Figure()
    FigureCanvasAgg(fig)
    linear_ax, log_ax = fig.subplots(1, 2)
    lo, hi = np.nanmin(depth), np.nanmax(depth)
    linear, logged = show_depth(linear_ax, depth, lo, hi), show_depth(log_ax, depth, lo, hi, log=True)
    assert linear.norm(10.0) < 0.03 and logged.norm(10.0) > 0.3
    fig.canvas.draw()
    labels = [t.label1.get_text() for t in logged.colorbar.ax.yaxis._update_ticks() if t.label1.get_text()]
    assert labels == ["near 1.1 m", "far 416 m"]
