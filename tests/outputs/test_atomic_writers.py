"""Every output format goes through the one atomic writer: a write that fails (a full disk at the rename) or is
interrupted mid-stream leaves neither the file nor a temporary behind; a write that succeeds leaves just the file."""

import errno

import numpy as np
import pytest

from primedepth.outputs.formats import FORMATS, METRIC_FORMATS
from primedepth.outputs.products import OutputOptions, product_writers
from primedepth.outputs.writers import output_path, write_prediction
from primedepth.pipelines.image_processor import load_image
from primedepth.utils import atomic

# the metric formats need a metric prior's result; they are written by the same bytes writer as "depth"
PLAIN_FORMATS = [f for f in FORMATS if f not in METRIC_FORMATS]


@pytest.fixture
def prediction():
    rng = np.random.default_rng(0)
    inverse_depth = rng.uniform(0.1, 1.0, (24, 32)).astype(np.float32)
    segmentation = rng.integers(0, 150, (24, 32)).astype(np.uint8)
    image = load_image(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    return inverse_depth, segmentation, image


def _write(folder, fmt, prediction):
    inverse_depth, segmentation, image = prediction
    writers, _ = product_writers([fmt], inverse_depth, image, OutputOptions(depth_range=(1.0, 10.0)))
    return write_prediction(folder / "x", [fmt], inverse_depth, segmentation, product_writers=writers)


@pytest.mark.parametrize("fmt", PLAIN_FORMATS)
def test_a_failed_write_leaves_nothing(fmt, tmp_path, prediction, monkeypatch):
    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    with pytest.raises(OSError) as err:
        _write(tmp_path, fmt, prediction)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(output_path(tmp_path / "x", fmt))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", PLAIN_FORMATS)
def test_a_finished_write_leaves_only_the_file(fmt, tmp_path, prediction):
    assert _write(tmp_path, fmt, prediction) == [output_path(tmp_path / "x", fmt)]
    assert [p.name for p in tmp_path.iterdir()] == ["x" + FORMATS[fmt]]
    if fmt == "npy":
        np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), prediction[0])


def test_an_interrupted_npy_stream_leaves_nothing(tmp_path, prediction, monkeypatch):
    """The raw map is streamed into the temporary file; Ctrl-C halfway removes the half-written temporary."""
    real_save = np.save

    def interrupted(file, array, *args, **kwargs):
        real_save(file, array[:3])  # a third of the header and rows reach the disk
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path, "npy", prediction)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(np, "save", real_save)
    atomic.atomic_save_npy(tmp_path / "y.npy", prediction[0])
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), prediction[0])
    assert [p.name for p in tmp_path.iterdir()] == ["y.npy"]
