"""Temporal fusion (``outputs.temporal``) and image sequences through ``predict_video``: a still scene stays still,
a translation is tracked, occlusions fall back to the current frame, EXR / TIFF frames equal the npz stack."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import primedepth
from primedepth.cli import main
from primedepth.jobs.sequence import list_frames, natural_key
from primedepth.jobs.video import VideoReadError, predict_video, probe
from primedepth.outputs.formats import read_exr, read_tiff
from primedepth.outputs.temporal import FlowWarp, TemporalFusion, grey


def _texture(h, w, seed=0):
    """Smooth random texture (uint8 RGB): enough structure everywhere for dense optical flow."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((h // 4 + 2, w // 4 + 2, 3))
    big = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((w + 8, h + 8), Image.BICUBIC))
    return np.ascontiguousarray(big[4 : h + 4, 4 : w + 4])


def _depth_of(rgb):
    """A stand-in for the model: inverse depth as a smooth function of the pixels (moves with the content)."""
    return 1.0 + rgb[..., 0].astype(np.float32) / 255.0 + 0.5 * rgb[..., 1].astype(np.float32) / 255.0


def test_static_camera_over_a_static_scene_gives_identical_frames():
    rgb = _texture(48, 64)
    raw = _depth_of(rgb)
    fusion = TemporalFusion("flow")
    fused = [fusion.update(rgb, raw).fused for _ in range(6)]
    for frame in fused[1:]:
        np.testing.assert_allclose(frame, fused[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(fused[0], raw, rtol=0, atol=1e-6)


def test_a_pure_translation_is_tracked():
    world = _texture(96, 128, seed=1)
    dy, dx = 2, 3  # the camera pans: the content moves by (-dx, -dy) pixels
    first, second = world[8:56, 8:72], world[8 + dy : 56 + dy, 8 + dx : 72 + dx]
    flow = FlowWarp()
    coords, agree = flow.backward(grey(first), grey(second))
    warped = flow.warp(_depth_of(first), coords)
    overlap = np.zeros(agree.shape, bool)
    overlap[4 : -4 - dy, 4 : -4 - dx] = True  # inside the part both frames see, away from the borders
    assert agree[overlap].mean() > 0.95
    both = overlap & agree
    np.testing.assert_allclose(coords[both][:, 0] - np.nonzero(both)[1], dx, atol=0.25)
    np.testing.assert_allclose(coords[both][:, 1] - np.nonzero(both)[0], dy, atol=0.25)
    target = _depth_of(second)
    error = np.abs(warped[both] - target[both])
    assert np.median(error) < 0.01 and error.mean() < 0.02  # values span about 1.5
    # through the fusion: the second fused map equals its own prediction inside the overlap
    fusion = TemporalFusion("flow")
    fusion.update(first, _depth_of(first))
    step = fusion.update(second, target)
    assert step.tracked[overlap].mean() > 0.95
    assert np.median(np.abs(step.fused[overlap] - target[overlap])) < 0.01


def test_an_occlusion_boundary_falls_back_to_the_current_frame():
    background = _texture(48, 64, seed=2)
    square = _texture(16, 16, seed=3)

    def frame(x0):
        rgb = background.copy()
        rgb[16:32, x0 : x0 + 16] = square
        raw = _depth_of(rgb)
        raw[16:32, x0 : x0 + 16] += 4.0  # the square is much nearer than the wall
        return rgb, raw

    fusion = TemporalFusion("flow")
    fusion.update(*frame(16))
    rgb, raw = frame(24)  # the square moved 8 px right: x 16..23 shows the wall again
    step = fusion.update(rgb, raw)
    aligned = np.float32(step.scale) * raw + np.float32(step.shift)
    uncovered = np.zeros(raw.shape, bool)
    uncovered[17:31, 17:23] = True
    assert not step.tracked[uncovered].any()
    np.testing.assert_array_equal(step.fused[uncovered], aligned[uncovered])
    far = np.zeros(raw.shape, bool)
    far[4:12, 4:60] = True  # the wall away from the square: followed from the previous frame
    assert step.tracked[far].mean() > 0.9
    assert abs(step.scale - 1) < 0.02 and abs(step.shift) < 0.05


def test_modes_off_and_affine():
    rgb = _texture(32, 32)
    raw = _depth_of(rgb)
    off = TemporalFusion("off")
    off.update(rgb, raw)
    np.testing.assert_array_equal(off.update(rgb, 2 * raw - 1).fused, 2 * raw - 1)
    affine = TemporalFusion("affine")
    affine.update(rgb, raw)
    np.testing.assert_allclose(affine.update(rgb, 2 * raw - 1).fused, raw, atol=1e-4)
    with pytest.raises(ValueError, match="temporal mode"):
        TemporalFusion("median")


def _sequence(folder, count, suffix=".png"):
    folder.mkdir()
    world = _texture(64, 96, seed=4)
    for k in range(count):
        Image.fromarray(world[8:40, 2 * k : 2 * k + 48]).save(folder / f"shot_{k + 1}{suffix}")  # shot_1 ... shot_10
    return folder


def test_natural_order():
    names = ["f10.png", "f2.png", "F1.png", "f1b.png"]
    assert sorted(names, key=natural_key) == ["F1.png", "f1b.png", "f2.png", "f10.png"]


@pytest.mark.parametrize("kind", ["exr", "tiff"])
def test_an_image_sequence_round_trips_to_float_frames_equal_to_the_npz(tmp_path, kind):
    folder = _sequence(tmp_path / "shot", 10)
    assert [p.name for p in list_frames(folder)][:3] == ["shot_1.png", "shot_2.png", "shot_3.png"]
    info = probe(folder, fps=12)
    assert (info.width, info.height, info.frames, info.fps) == (48, 32, 10, 12)

    calls = []

    def pipe(rgb, **kwargs):
        calls.append(rgb)
        return SimpleNamespace(inverse_depth=[_depth_of(rgb)])

    result = predict_video(pipe, folder, tmp_path / "out", frames=kind, fps=12, progress=False)
    assert result.frames == 10 and result.fps == 12
    # frames are read in natural order: frame k is the window shifted by 2k pixels
    np.testing.assert_array_equal(calls[3], np.asarray(Image.open(folder / "shot_4.png")))
    data = np.load(result.outputs["npz"])
    stack = data["inverse_depth"]
    assert stack.shape == (10, 32, 48) and str(data["temporal"]) == "flow"
    read = read_exr if kind == "exr" else read_tiff
    written = sorted(result.outputs["frames"].iterdir())
    assert [p.name for p in written][:2] == [f"0000000.{kind}", f"0000001.{kind}"]
    for k, path in enumerate(written):
        np.testing.assert_array_equal(read(path), stack[k])
    assert not (tmp_path / "out" / "shot_frames_raw").exists()


def test_an_unreadable_frame_is_named(tmp_path):
    folder = _sequence(tmp_path / "shot", 3)
    (folder / "shot_2.png").write_bytes(b"not a png")

    def pipe(rgb, **kwargs):
        return SimpleNamespace(inverse_depth=[_depth_of(rgb)])

    with pytest.raises(VideoReadError, match="shot_2.png"):
        predict_video(pipe, folder, tmp_path / "out", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoReadError, match="no PNG, JPEG, TIFF or EXR frames"):
        predict_video(pipe, empty, tmp_path / "out", progress=False)


@pytest.mark.slow  # about a minute on the 2-core machine: 2,100 frames through decoding, flow and encoding
def test_a_long_video_runs_in_flat_memory():
    """Peak RSS of a fresh process for 100 and 2,000 frames at 32 x 32: keeping every fused frame would add 8 MB
    (plus the raw maps), so the difference must stay well under that."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "video_memory.py"
    out = subprocess.run(
        [sys.executable, str(script), "--frames", "100", "2000", "--size", "32", "--json"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(primedepth.__file__).parents[1])},
    )
    short, long = (json.loads(line) for line in out.stdout.strip().splitlines())
    assert short["frames"] == 100 and long["frames"] == 2000
    assert long["peak_rss_mb"] - short["peak_rss_mb"] < 4.0, (short, long)


def test_cli_refuses_an_unknown_temporal_mode(tmp_path):
    folder = _sequence(tmp_path / "shot", 3)
    result = CliRunner().invoke(main, ["video", str(folder), "-o", str(tmp_path / "o"), "--temporal", "median"])
    assert result.exit_code == 2 and "'median' is not one of 'flow', 'affine', 'off'" in result.output


@pytest.mark.slow  # about 20 s on the 2-core machine (loading tiny-random)
def test_cli_reads_a_folder_of_frames(tmp_path):
    folder = _sequence(tmp_path / "shot", 3)
    result = CliRunner().invoke(
        main,
        ["video", str(folder), "-o", str(tmp_path / "o"), "--model", "tiny-random", "--frames", "tiff", "--fps", "8"],
    )
    assert result.exit_code == 0, result.output
    assert "3 frames at 8 fps" in result.output
    assert len(list((tmp_path / "o" / "shot_frames").glob("*.tiff"))) == 3
