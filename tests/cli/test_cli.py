"""``primedepth predict`` end to end on the tiny random model."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from primedepth.cli import main
from primedepth.utils.atomic import is_our_temp


def _folder(tmp_path, rgb_image):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(rgb_image).save(src / "good.png")
    Image.fromarray(rgb_image[:33, :47]).save(src / "sub" / "small.jpg")
    data = (src / "good.png").read_bytes()
    (src / "truncated.png").write_bytes(data[: len(data) // 2])
    (src / "notes.jpg").write_text("a text file with an image extension")
    return src


def test_predict_writes_every_format_at_input_size(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(tmp_path / "x.png"),
            "-o",
            str(out),
            "--model",
            "tiny-random",
            "--format",
            "npy,png16,color,seg",
        ],
    )
    assert result.exit_code == 0, result.output
    depth = np.load(out / "x.npy")
    assert depth.shape == (75, 93) and depth.dtype == np.float32
    png16 = Image.open(out / "x_16bit.png")
    assert png16.size == (93, 75) and np.asarray(png16).dtype in (np.uint16, np.int32)
    # the 16-bit PNG is the min-max normalised inverse depth
    norm = (depth - depth.min()) / (depth.max() - depth.min())
    np.testing.assert_allclose(np.asarray(png16) / 65535.0, norm, atol=1 / 65535)
    assert Image.open(out / "x_color.png").mode == "RGB" and Image.open(out / "x_color.png").size == (93, 75)
    seg = Image.open(out / "x_seg.png")
    assert seg.mode == "P" and seg.size == (93, 75) and np.asarray(seg).max() < 150


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_folder_with_bad_files_keeps_going_names_them_and_fails_the_exit_code(tmp_path, rgb_image):
    src, out = _folder(tmp_path, rgb_image), tmp_path / "out"
    args = ["predict", str(src), "-o", str(out), "--model", "tiny-random", "--batch-size", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "truncated.png" in result.output and "notes.jpg" in result.output and "2 failed" in result.output
    assert np.load(out / "good.npy").shape == (75, 93)
    assert np.load(out / "sub" / "small.npy").shape == (33, 47)
    assert not list(out.rglob("truncated*")) and not list(out.rglob("notes*"))
    assert not [p for p in out.rglob("*") if is_our_temp(p)]

    # Rerun: finished images are skipped, the broken ones fail again.
    mtime = (out / "good.npy").stat().st_mtime_ns
    again = CliRunner().invoke(main, args)
    assert "2 skipped" in again.output and again.exit_code == 1
    assert (out / "good.npy").stat().st_mtime_ns == mtime
    forced = CliRunner().invoke(main, args + ["--overwrite"])
    assert "2 written" in forced.output


def test_low_memory_and_default_write_the_same_depth(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    for name, extra in (("plain", []), ("low", ["--low-memory"])):
        result = CliRunner().invoke(
            main,
            [
                "predict",
                str(tmp_path / "x.png"),
                "-o",
                str(tmp_path / name),
                "--model",
                "tiny-random",
                "--format",
                "npy",
                "--dtype",
                "fp32",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
    plain, low = np.load(tmp_path / "plain" / "x.npy"), np.load(tmp_path / "low" / "x.npy")
    assert np.abs(plain - low).max() <= 1e-4 * np.abs(plain).max()


def test_native_size_glob_and_unknown_inputs(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "a.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(tmp_path / "*.png"),
            str(tmp_path / "nope.png"),
            "-o",
            str(out),
            "--model",
            "tiny-random",
            "--native-size",
            "--format",
            "npy",
        ],
    )
    assert result.exit_code == 1 and "nope.png: no such file" in result.output
    assert np.load(out / "a.npy").shape == (72, 88)


def test_missing_model_is_one_clear_error(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "a.png")
    result = CliRunner().invoke(
        main, ["predict", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "no-model")]
    )
    assert result.exit_code == 2 and "primedepth convert" in result.output


def test_auto_captions_without_the_caption_model_stop_with_one_clear_error(tmp_path, rgb_image, monkeypatch):
    monkeypatch.setenv("PRIMEDEPTH_CACHE", str(tmp_path / "cache"))
    Image.fromarray(rgb_image).save(tmp_path / "a.png")
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(tmp_path / "a.png"),
            "-o",
            str(tmp_path / "o"),
            "--model",
            "tiny-random",
            "--caption",
            "auto",
            "--local-files-only",
            "--cache-dir",
            str(tmp_path / "hf"),
        ],
    )
    assert result.exit_code == 2
    assert "blip2" in result.output and "--caption none" in result.output
    assert not (tmp_path / "o" / "a.npy").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_one_clear_line(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    result = CliRunner().invoke(
        main,
        ["predict", str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model", "tiny-random", "--device", "cuda"],
    )
    assert result.exit_code == 2
    assert "error: device cuda requested but" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o" / "x.npy").exists()
