"""``pseudo-label`` on a folder: an unreadable image is reported and the others are labelled (exit 1, a rerun retries
it); without a caption model the error names the option that labels without captions."""

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from primedepth.cli import main


def _images(folder):
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((24, 32, 3), 40 * i, np.uint8)).save(folder / f"im{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")


def test_an_unreadable_image_is_reported_and_the_others_labelled(tiny_depth_anything, tmp_path, one_thread):
    _images(tmp_path / "images")
    args = [str(tmp_path / "images"), str(tmp_path / "labels"), "--depth-model", str(tiny_depth_anything)]
    result = CliRunner().invoke(main, ["pseudo-label", *args, "--no-segmentation", "--caption-model", "none"])
    assert result.exit_code == 1, result.output
    assert f"failed: {tmp_path / 'images' / 'broken.png'}: cannot read the image" in result.output
    entries = [json.loads(line) for line in (tmp_path / "labels" / "manifest.jsonl").read_text().splitlines()]
    assert [e["key"] for e in entries] == ["im0.png", "im1.png", "im2.png"]
    assert all(e["caption"] == "" for e in entries)


def test_without_a_caption_model_the_hint_names_an_existing_option(tiny_depth_anything, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _images(tmp_path / "images")
    args = [str(tmp_path / "images"), str(tmp_path / "labels"), "--depth-model", str(tiny_depth_anything)]
    missing = str(tmp_path / "no-blip2")
    result = CliRunner().invoke(
        main, ["pseudo-label", *args, "--no-segmentation", "--caption-model", missing, "--local-files-only"]
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no-blip2" in errors[0] and "--caption-model none" in errors[0]
    assert "--caption none" not in result.output
    assert isinstance(result.exception, SystemExit)
