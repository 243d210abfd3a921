"""``predict`` and the user's files: outputs recognised by the manifest of what our runs wrote (never by name), no
input or foreign file overwritten, every image of a failing batch written or reported, depth independent of the
batch, and every input that cannot be read reported."""

import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from primedepth.cli import main
from primedepth.outputs.manifest import MANIFEST_NAME, OutputClashError, OutputManifest


def _predict(*args):
    return CliRunner().invoke(main, ["predict", *map(str, args), "--model", "tiny-random"])


def _photo(path, rgb_image, shift=0):
    Image.fromarray(np.roll(rgb_image, shift, axis=1)).save(path)
    return path


def test_photos_named_like_outputs_are_inputs_and_never_overwritten(tmp_path, rgb_image):
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "a.png", rgb_image)
    _photo(photos / "a.tiff", rgb_image, 20)  # the user's photo, where a.png's float map would go
    _photo(photos / "d_color.png", rgb_image, 40)  # named like a colour map of ours, but the user's
    photo_bytes = (photos / "a.tiff").read_bytes()
    for overwrite in ([], ["--overwrite"]):
        result = _predict(photos, "-o", photos, "--format", "npy,tiff", *overwrite)
        assert result.exit_code == 1, result.output
        assert (photos / "a.tiff").read_bytes() == photo_bytes
        # a.tiff is an input like any photo: it clashes with a.png by name, and a.png's map would replace it
        assert "a.tiff: its outputs would overwrite those of" in result.output
        assert f"a.png: {photos / 'a.tiff'} exists and no primedepth run wrote it" in result.output
        assert np.load(photos / "d_color.npy").shape == (75, 93)
    assert not (photos / "a.npy").exists()  # refused before anything of a.png was written
    assert sorted(p.name for p in photos.iterdir() if p.suffix == ".npy") == ["d_color.npy"]


def test_outputs_inside_the_inputs_are_skipped_by_record_not_by_name(tmp_path, rgb_image):
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "x.png", rgb_image)
    first = _predict(photos, "-o", photos, "--format", "npy,tiff,color")
    assert first.exit_code == 0 and "1 written" in first.output, first.output
    again = _predict(photos, "-o", photos, "--format", "npy,tiff,color")
    assert again.exit_code == 0 and "0 written, 1 skipped" in again.output, again.output
    recorded = OutputManifest(photos).recorded()
    assert recorded == {"x.npy", "x.tiff", "x_color.png"}
    # a photo the user adds later under a name of ours is predicted, not taken for an output
    _photo(photos / "y.tiff", rgb_image, 10)
    third = _predict(photos, "-o", photos, "--format", "npy")
    assert third.exit_code == 0 and "1 written, 1 skipped" in third.output, third.output
    assert np.load(photos / "y.npy").shape == (75, 93)


def test_manifest_claims_refuse_inputs_and_foreign_files_and_survive_a_cut_line(tmp_path):
    (tmp_path / "mine.npy").write_bytes(b"x")
    (tmp_path / "theirs.npy").write_bytes(b"x")
    manifest = OutputManifest(tmp_path, inputs=[tmp_path / "in.png"])
    manifest.claim([tmp_path / "new.npy", tmp_path / "sub" / "deep.png"])
    with pytest.raises(OutputClashError, match="no primedepth run wrote it"):
        manifest.claim([tmp_path / "a.npy", tmp_path / "theirs.npy"])
    with pytest.raises(OutputClashError, match="would overwrite that input"):
        manifest.claim([tmp_path / "in.png"])
    assert not manifest.owns(tmp_path / "a.npy")  # nothing of a refused claim is recorded
    with open(tmp_path / MANIFEST_NAME, "ab") as f:
        f.write(b'{"path": "mi')  # a record cut by a full disk
    OutputManifest(tmp_path).claim([tmp_path / "later.npy"])
    fresh = OutputManifest(tmp_path)
    assert fresh.recorded() == {"new.npy", "sub/deep.png", "later.npy"}
    assert fresh.owns(tmp_path / "sub" / "deep.png") and not fresh.owns(tmp_path / "mine.npy")
    # two runs sharing the folder: what one records and writes, the other (which read the record before) owns too
    other = OutputManifest(tmp_path)
    assert "shared.npy" not in other.recorded()
    manifest.claim([tmp_path / "shared.npy"])
    (tmp_path / "shared.npy").write_bytes(b"x")
    assert other.clash(tmp_path / "shared.npy") is None


def test_a_failing_batch_writes_or_reports_every_image(tmp_path, rgb_image):
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tmp_path / "a.png")  # too small at --native-size
    for name, shift in (("b", 0), ("c", 10), ("d", 20)):
        _photo(tmp_path / f"{name}.png", rgb_image, shift)
    out = tmp_path / "out"
    result = _predict(tmp_path / "*.png", "-o", out, "--batch-size", 3, "--native-size", "--format", "npy")
    assert result.exit_code == 1, result.output
    assert "done: 3 written, 0 skipped (outputs exist), 1 failed" in result.output
    assert "a.png: prediction failed" in result.output
    assert sorted(p.name for p in out.glob("*.npy")) == ["b.npy", "c.npy", "d.npy"]


def test_depth_does_not_depend_on_the_batch_or_a_resume(tmp_path, rgb_image):
    for name, shift in (("a", 0), ("b", 30), ("c", 60)):
        _photo(tmp_path / f"{name}.png", rgb_image, shift)
    runs = {}
    for batch in (1, 2, 3):
        out = tmp_path / f"batch{batch}"
        assert _predict(tmp_path / "*.png", "-o", out, "--batch-size", batch, "--format", "npy").exit_code == 0
        runs[batch] = {n: np.load(out / f"{n}.npy") for n in "abc"}
    (tmp_path / "batch3" / "c.npy").unlink()  # a run killed before its last image, resumed
    resumed = _predict(tmp_path / "*.png", "-o", tmp_path / "batch3", "--batch-size", 3, "--format", "npy")
    assert resumed.exit_code == 0 and "1 written, 2 skipped" in resumed.output, resumed.output
    runs["resumed"] = {n: np.load(tmp_path / "batch3" / f"{n}.npy") for n in "abc"}
    for name in "abc":
        alone = runs[1][name]
        for key in (2, 3, "resumed"):
            # float rounding of batched convolutions only (a different noise draw moves the map by ~10 % here)
            assert np.abs(runs[key][name] - alone).max() <= 1e-4 * np.abs(alone).max(), (name, key)


def test_heic_fifos_and_unreadable_folders_are_reported(tmp_path, rgb_image, monkeypatch):
    photos = tmp_path / "photos"
    (photos / "private").mkdir(parents=True)
    _photo(photos / "x.png", rgb_image)
    _photo(photos / "private" / "hidden.png", rgb_image)
    (photos / "photo.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (photos / "photo2.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    os.mkfifo(tmp_path / "pipe.png")
    if os.geteuid() == 0:  # root reads any folder: refuse this one as the file system would refuse a user
        scandir = os.scandir

        def refusing(path="."):
            if not isinstance(path, int) and os.path.basename(os.fspath(path)) == "private":
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return scandir(path)

        monkeypatch.setattr(os, "scandir", refusing)
    else:
        (photos / "private").chmod(0)
    try:
        result = _predict(photos, tmp_path / "pipe.png", "-o", tmp_path / "out", "--format", "npy")
    finally:
        (photos / "private").chmod(0o755)
    assert result.exit_code == 1, result.output
    assert "1 written, 0 skipped (outputs exist), 4 failed" in result.output
    assert "photo.heic: HEIC images cannot be read; convert it to JPEG or PNG first" in result.output
    assert "photo2.HEIC: HEIC images cannot be read" in result.output
    assert f"{photos / 'private'}: folder cannot be read (Permission denied)" in result.output
    assert f"{tmp_path / 'pipe.png'}: not a regular file" in result.output


@pytest.mark.parametrize(
    "option, value, problem",
    [
        ("--fov", "200", "field of view must lie in (0, 180) degrees, got 200.0"),
        ("--fov", "nan", "field of view must lie in (0, 180) degrees, got nan"),
        ("--focal-px", "-1", "focal length must be a finite number of pixels > 0, got -1.0"),
        ("--focal-px", "nan", "focal length must be a finite number of pixels > 0, got nan"),
        ("--focal-px", "inf", "focal length must be a finite number of pixels > 0, got inf"),
    ],
)
def test_camera_options_are_usage_errors_before_the_model_loads(tmp_path, rgb_image, option, value, problem):
    _photo(tmp_path / "x.png", rgb_image)
    result = _predict(
        tmp_path / "x.png", "-o", tmp_path / "out", "--format", "ply", "--depth-range", "1,10", option, value
    )
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}': {problem}" in result.output
    assert "model:" not in result.output and "Traceback" not in result.output and not (tmp_path / "out").exists()
