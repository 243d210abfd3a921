"""``jobs.predict_files`` called directly: the batch with its per-image fallback, the files written against the
pipeline's own output, every bad input named, resume, and a failed write stopping the run."""

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from primedepth.jobs.predict_files import plan_files, predict_files, predict_in_batches
from primedepth.outputs.manifest import MANIFEST_NAME

OPTIONS = dict(caption="none", seed=0, match_input_size=False)  # the authors' size: a 1 x 1 image cannot be predicted


def _folder(tmp_path, rgb_image):
    """b, c, d: good photos; a: 1 x 1 pixel (the pipeline refuses it); broken: not an image at all."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "a.png")
    for name, shift in (("b", 0), ("c", 25), ("d", 50)):
        Image.fromarray(np.roll(rgb_image, shift, axis=1)).save(folder / f"{name}.png")
    (folder / "broken.png").write_bytes(b"no png here" * 10)
    items = [(p, Path(p.stem)) for p in sorted(folder.iterdir())]
    return folder, items


def test_good_files_are_written_as_the_pipeline_predicts_and_bad_ones_named(tmp_path, rgb_image, tiny_pipe):
    folder, items = _folder(tmp_path, rgb_image)
    out = tmp_path / "out"
    plan = plan_files(items, out, ["npy", "color"])
    assert [stem.name for _, stem in plan.todo] == ["a", "b", "broken", "c", "d"] and plan.skipped == 0
    result = predict_files(tiny_pipe, plan, options=OPTIONS, batch_size=3, progress=False)

    assert (result.written, result.skipped, result.todo, result.status) == (3, 0, 5, "inputs failed")
    assert len(result.failures) == 2
    assert result.failures[0].startswith(f"{folder / 'broken.png'}: ")
    assert result.failures[1].startswith(f"{folder / 'a.png'}: prediction failed (")
    assert result.summary()[0] == "done: 3 written, 0 skipped (outputs exist), 2 failed"
    assert result.summary()[1:] == [f"  failed: {f}" for f in result.failures]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MANIFEST_NAME, *(f"{n}{suffix}" for n in "bcd" for suffix in (".npy", "_color.png"))]
    )
    for name in "bcd":
        alone = tiny_pipe([str(folder / f"{name}.png")], **OPTIONS).inverse_depth[0]
        written = np.load(out / f"{name}.npy")
        assert written.shape == alone.shape == (72, 88)  # 8 * floor(75 / 8) x 8 * floor(93 / 8)
        # the batch of three only changes the float rounding of batched convolutions
        assert np.abs(written - alone).max() <= 1e-4 * np.abs(alone).max(), name

    again = plan_files(items, out, ["npy", "color"])  # resume: only the failed ones are left
    assert ([stem.name for _, stem in again.todo], again.skipped) == (["a", "broken"], 3)
    rerun = predict_files(tiny_pipe, again, options=OPTIONS, batch_size=3, progress=False)
    assert (rerun.written, rerun.skipped, len(rerun.failures)) == (0, 3, 2)


def test_a_full_disk_stops_the_run_at_the_first_write(tmp_path, rgb_image, tiny_pipe, monkeypatch):
    folder, items = _folder(tmp_path, rgb_image)
    good = [item for item in items if item[1].name in "bcd"]
    plan = plan_files(good, tmp_path / "out", ["npy"])
    calls = []

    def disk_full(fd):
        calls.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # every atomic write syncs before its rename
    result = predict_files(tiny_pipe, plan, options=OPTIONS, batch_size=1, progress=False)
    assert (result.written, result.status, len(calls)) == (0, "output error", 1)
    assert result.write_error == f"{tmp_path / 'out' / 'b.npy'}: cannot write (No space left on device)"
    assert result.summary()[:2] == [
        f"error: {result.write_error}; stopped",
        "done: 0 written, 0 skipped (outputs exist), 0 failed, 3 not done",
    ]
    assert [p.name for p in (tmp_path / "out").iterdir()] == [MANIFEST_NAME]


class ScalePipe:
    """Inverse depth = the image times a factor; refuses images holding the value 13 (a 'bad' image)."""

    def __init__(self):
        self.calls = []

    def __call__(self, images, batch_size=1, factor=1.0):
        self.calls.append(len(images))
        if any((np.asarray(im) == 13).any() for im in images):
            raise ValueError("bad pixels")
        return type("Out", (), {"inverse_depth": [np.asarray(im, np.float32) * factor for im in images]})()


def test_a_failing_batch_is_retried_image_by_image_and_the_culprit_named():
    images = [np.full((2, 2), v) for v in (1, 13, 3)]
    pipe = ScalePipe()
    runs = list(predict_in_batches(pipe, images, 3, {"factor": 2.0}))
    assert pipe.calls == [3, 1, 1, 1]  # the batch, then each image alone
    assert [(group, error is None) for group, _, error in runs] == [([0], True), ([1], False), ([2], True)]
    assert str(runs[1][2]) == "bad pixels"
    np.testing.assert_array_equal(runs[2][1].inverse_depth[0], np.full((2, 2), 6.0))

    good = ScalePipe()
    [(group, out, error)] = predict_in_batches(good, [images[0], images[2]], 2, {})
    assert (group, error, good.calls) == ([0, 1], None, [2])  # a batch that runs is run once
    np.testing.assert_array_equal(out.inverse_depth[1], images[2].astype(np.float32))
    assert list(predict_in_batches(good, [], 2, {})) == []


def test_a_consumer_that_stops_stops_the_predictions():
    pipe = ScalePipe()
    for _ in predict_in_batches(pipe, [np.full((2, 2), v) for v in (13, 2, 3)], 3, {}):
        break
    assert pipe.calls == [3, 1]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_inputs_refused_while_planning_are_reported_with_the_rest(tmp_path, rgb_image, tiny_pipe, batch_size):
    folder, items = _folder(tmp_path, rgb_image)
    plan = plan_files(items[1:2], tmp_path / "out", ["npy"], failures=["x.heic: HEIC images cannot be read"])
    result = predict_files(tiny_pipe, plan, options=OPTIONS, batch_size=batch_size, progress=False)
    assert (result.written, result.failures, result.status) == (
        1,
        ["x.heic: HEIC images cannot be read"],
        "inputs failed",
    )
