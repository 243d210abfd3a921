"""``jobs.video.plan_videos`` / ``predict_videos``: missing inputs and name clashes named, finished videos skipped
without a model, each clip through ``predict_video``."""

import numpy as np
import pytest

from primedepth.jobs.video import plan_videos, predict_videos, write_video

pytest.importorskip("av")


class AffinePipe:
    """Inverse depth = the frame's mean colour, a stand-in whose output is known exactly."""

    def __call__(self, rgb, **kwargs):
        return type("Out", (), {"inverse_depth": [np.asarray(rgb, np.float32).mean(axis=-1)]})()


def _clip(path, frames=4):
    rng = np.random.default_rng(0)
    write_video(path, (rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(frames)), fps=12)
    return path


def test_plan_and_predict_videos(tmp_path):
    (tmp_path / "x").mkdir()
    clip, twin = _clip(tmp_path / "clip.mp4"), _clip(tmp_path / "x" / "clip.mp4")
    out = tmp_path / "out"
    outputs = dict(side_by_side_video=False, frames=None, npz=True)
    plan = plan_videos([clip, twin, tmp_path / "gone.mp4"], out, overwrite=False, **outputs)
    assert plan.todo == [clip] and plan.needed
    assert plan.failures == [
        f"{tmp_path / 'gone.mp4'}: no such file",
        f"{twin}: its outputs would overwrite those of {clip} (same name); rename one",
    ]
    lines = []
    result = predict_videos(AffinePipe(), plan, out, log=lines.append, temporal="off", progress=False, **outputs)
    assert (result.written, len(result.failures), result.interrupted) == (1, 2, None)
    assert lines == [f"{clip}: 4 frames at 12 fps (4 predicted, 0 resumed) -> {out / 'clip_depth.mp4'}"]
    assert result.summary()[0] == "done: 1 written, 2 failed"
    stack = np.load(out / "clip_depth.npz")["inverse_depth"]
    assert stack.shape == (4, 32, 48)

    again = plan_videos([clip], out, overwrite=False, **outputs)
    assert not again.needed  # every output exists: no model is loaded
    skipped = predict_videos(None, again, out, log=lines.append, progress=False, **outputs)
    assert skipped.written == 0 and lines[-1] == f"{clip}: outputs exist, skipped (--overwrite to redo)"
