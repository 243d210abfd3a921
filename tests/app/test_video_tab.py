"""The app's video function: ``predict_video``'s files with progress per frame, and its limits."""

import av
import numpy as np
import pytest

from primedepth.app.models import ModelRegistry, model_choice
from primedepth.app.predict import InputRejected
from primedepth.app.video import predict_clip
from primedepth.jobs.video import VideoReadError


@pytest.fixture(scope="module")
def registry():
    return ModelRegistry([model_choice("tiny-random")], device="cpu")


def test_clip_gives_depth_videos_and_reports_progress(registry, clip, tmp_path):
    progress = []
    result = predict_clip(
        registry,
        clip,
        model="tiny-random",
        stride=2,
        max_frames=3,
        workdir=tmp_path,
        max_pixels=10**6,
        frame_limit=10,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert [p.name for p in result.downloads] == ["walk_depth.mp4", "walk_side.mp4", "walk_depth.npz"]
    with av.open(str(result.video)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(stream.average_rate) == 4.0  # 8 fps / stride 2
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
    assert np.load(result.downloads[-1])["inverse_depth"].shape == (3, 48, 64)
    assert "3 frames (frame stride 2)" in result.label and "random weights" in result.label


def test_clip_limits_and_non_videos_are_refused(registry, clip, tmp_path):
    with pytest.raises(InputRejected, match="between 1 and 2"):
        predict_clip(
            registry, clip, model="tiny-random", max_frames=3, workdir=tmp_path, max_pixels=10**6, frame_limit=2
        )
    with pytest.raises(InputRejected, match="64 x 48 frames are over this app's limit"):
        predict_clip(
            registry, clip, model="tiny-random", max_frames=2, workdir=tmp_path, max_pixels=1000, frame_limit=2
        )
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(VideoReadError, match="notes.mp4: not a video"):
        predict_clip(
            registry,
            tmp_path / "notes.mp4",
            model="tiny-random",
            max_frames=2,
            workdir=tmp_path,
            max_pixels=10**6,
            frame_limit=2,
        )
