"""``primedepth video`` / ``predict_video``: playable H.264 output, resume after a kill, stabilisation, rotation."""

from fractions import Fraction
from types import SimpleNamespace

import av
import numpy as np
import pytest
from click.testing import CliRunner

from primedepth.cli import main
from primedepth.data.scenes import render_trajectory
from primedepth.jobs.video import predict_video, probe, read_frames, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """10 frames, 48 x 64, 10 fps: a camera moving through a rendered scene (written with PyAV)."""
    path = tmp_path_factory.mktemp("clip") / "walk.mp4"
    scenes = render_trajectory(11, 10, 48, 64)
    assert write_video(path, (s.image for s in scenes), Fraction(10)) == 10
    return path


def _decoded(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, Fraction(stream.average_rate)


class AffinePipe:
    """Stands in for the pipeline: a fixed map under a different scale and shift per call (what an affine-invariant
    model does), counting calls and optionally interrupting like a kill after ``stop_after`` predictions."""

    def __init__(self, stop_after=None):
        self.calls, self.stop_after = 0, stop_after

    def __call__(self, image, **kwargs):
        h, w = image.shape[:2]
        y, x = np.mgrid[0:h, 0:w]
        base = (1.0 + x / w + (y / h) ** 2).astype(np.float32)
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        k = self.calls
        self.calls += 1
        return SimpleNamespace(inverse_depth=[np.float32(1.0 + 0.3 * k) * base + np.float32(0.7 * k - 2.0)])


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_cli_writes_a_playable_mp4_with_the_right_frames_size_and_fps(tmp_path, clip):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["video", str(clip), "-o", str(out), "--model", "tiny-random", "--side-by-side", "--frames", "png16"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("licences: random weights (tests)")
    frames, fps = _decoded(out / "walk_depth.mp4")
    assert len(frames) == 10 and frames[0].shape == (48, 64, 3) and fps == 10
    side, _ = _decoded(out / "walk_side.mp4")
    assert len(side) == 10 and side[0].shape[1] == 2 * 64 + 8
    stack = np.load(out / "walk_depth.npz")
    assert stack["inverse_depth"].shape == (10, 48, 64) and stack["inverse_depth"].dtype == np.float32
    np.testing.assert_array_equal(stack["frame_numbers"], np.arange(10))
    assert len(list((out / "walk_frames").glob("*_16bit.png"))) == 10
    assert not (out / "walk_frames_raw").exists()
    again = CliRunner().invoke(
        main, ["video", str(clip), "-o", str(out), "--model", "tiny-random", "--side-by-side", "--frames", "png16"]
    )
    assert again.exit_code == 0 and "skipped" in again.output


def test_stride_time_range_and_max_frames(tmp_path, clip):
    numbers = [n for n, _, _ in read_frames(clip, stride=2, start=0.2, max_frames=3)]
    assert numbers == [0, 2, 4]  # counted from the first kept time (frame 2 of the file)
    times = [t for _, t, _ in read_frames(clip, start=0.2, end=0.5)]
    np.testing.assert_allclose(times, [0.2, 0.3, 0.4], atol=1e-6)
    result = predict_video(AffinePipe(), clip, tmp_path, stride=3, progress=False)
    frames, fps = _decoded(result.outputs["video"])
    assert len(frames) == 4 and fps == Fraction(10, 3)


def test_a_kill_mid_run_recomputes_nothing_on_rerun(tmp_path, clip):
    killed = AffinePipe(stop_after=4)
    with pytest.raises(KeyboardInterrupt):
        predict_video(killed, clip, tmp_path, progress=False)
    assert not (tmp_path / "walk_depth.mp4").exists()  # no half-written video
    assert len(list((tmp_path / "walk_frames_raw").glob("*.npy"))) == 4
    rerun = AffinePipe()
    rerun.calls = 4  # continue the same sequence of affine maps
    result = predict_video(rerun, clip, tmp_path, progress=False)
    assert result.predicted == 6 and rerun.calls == 10 and result.frames == 10
    reference = predict_video(AffinePipe(), clip, tmp_path / "whole", progress=False)
    np.testing.assert_array_equal(
        np.load(result.outputs["npz"])["inverse_depth"], np.load(reference.outputs["npz"])["inverse_depth"]
    )


def test_stabilisation_undoes_per_frame_scale_and_shift(tmp_path, clip):
    pipe = AffinePipe()
    stable = predict_video(pipe, clip, tmp_path / "on", temporal="affine", progress=False)
    stack = np.load(stable.outputs["npz"])["inverse_depth"]
    first = stack[0]
    for frame in stack[1:]:
        np.testing.assert_allclose(frame, first, rtol=1e-4, atol=1e-4)
    raw = np.load(predict_video(AffinePipe(), clip, tmp_path / "off", temporal="off", progress=False).outputs["npz"])[
        "inverse_depth"
    ]
    assert np.abs(raw[-1] - raw[0]).mean() > 1.0
    # the colour video shares one range for the whole clip: a stabilised static map gives (near) static colours
    frames, _ = _decoded(stable.outputs["video"])
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() < 2.0


def test_rotation_metadata_is_honoured(tmp_path):
    path = tmp_path / "portrait.mp4"
    frame = np.zeros((32, 48, 3), np.uint8)
    frame[:8, :16] = 255  # a white block in the top-left corner of the stored frame
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.set_display_rotation(90)
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (32, 48, 90)
    _, _, upright = next(read_frames(path))
    assert upright.shape == (48, 32, 3)
    np.testing.assert_allclose(upright.astype(int), np.rot90(frame, 1).astype(int), atol=40)
    result = predict_video(AffinePipe(), path, tmp_path / "out", progress=False)
    frames, _ = _decoded(result.outputs["video"])
    assert frames[0].shape == (48, 32, 3)


def test_unreadable_video_is_one_error_line(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    result = CliRunner().invoke(
        main, ["video", str(bad), str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o"), "--model", "tiny-random"]
    )
    assert result.exit_code == 1
    assert "broken.mp4: not a video ffmpeg can read" in result.output and "missing.mp4: no such file" in result.output
    assert "Traceback" not in result.output
