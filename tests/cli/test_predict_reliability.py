"""``primedepth predict`` as a hostile or unlucky user runs it: outputs inside the inputs, broken symbolic links,
an unwritable output folder, a full disk, broken or hostile model folders; and ``convert`` on broken checkpoints."""

import errno
import json
import os
import shutil

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file, save_file

from primedepth import PrimeDepthPipeline
from primedepth.cli import main
from primedepth.outputs.manifest import MANIFEST_NAME


def _predict(*args):
    return CliRunner().invoke(main, ["predict", *map(str, args)])


@pytest.mark.parametrize("inside", ["depth", "."])
def test_rerun_with_the_output_folder_inside_the_inputs_resumes(tmp_path, rgb_image, inside):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(rgb_image).save(photos / "x.png")
    out = photos / inside
    before = None
    for run in range(3):
        result = _predict(photos, "-o", out, "--model", "tiny-random")
        assert result.exit_code == 0, result.output
        assert ("1 written" if run == 0 else "1 skipped") in result.output
        files = sorted(str(p.relative_to(photos)) for p in photos.rglob("*"))
        assert before is None or files == before  # nothing grows: no x_16bit_16bit.png, no depth/depth/
        before = files
    expected = ["x.npy", "x_16bit.png", "x_color.png"]
    assert sorted(p.name for p in out.iterdir() if p.name not in ("x.png", MANIFEST_NAME)) == expected


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_dangling_and_looping_symlinks_are_reported(tmp_path, rgb_image):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb_image).save(src / "good.png")
    os.symlink(src / "gone.png", src / "dangling.png")
    os.symlink(src / "loop.jpg", src / "loop.jpg")
    os.symlink(src / "good.png", src / "alias.png")  # a working link is an image like any other
    result = _predict(src, "-o", tmp_path / "out", "--model", "tiny-random", "--format", "npy")
    assert result.exit_code == 1
    assert "2 written" in result.output and "2 failed" in result.output
    assert "dangling.png: broken symbolic link" in result.output and "loop.jpg: symbolic link loop" in result.output
    explicit = _predict(src / "dangling.png", "-o", tmp_path / "out2", "--model", "tiny-random")
    assert explicit.exit_code == 1 and "broken symbolic link" in explicit.output


def test_unwritable_output_folder_fails_before_the_model_loads(tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    (tmp_path / "afile").write_text("not a folder")
    result = _predict(tmp_path / "x.png", "-o", tmp_path / "afile" / "out", "--model", "tiny-random")
    assert result.exit_code == 3
    assert f"error: {tmp_path / 'afile' / 'out'}: output folder is not writable" in result.output
    assert "model:" not in result.output and "Traceback" not in result.output


def test_full_disk_stops_with_one_error_a_summary_and_exit_3(tmp_path, rgb_image, monkeypatch):
    for name in ("a", "b"):
        Image.fromarray(rgb_image).save(tmp_path / f"{name}.png")
    writes = []

    def disk_full(fd):
        writes.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # every atomic write fsyncs before the rename
    result = _predict(tmp_path / "*.png", "-o", tmp_path / "out", "--model", "tiny-random")
    assert result.exit_code == 3
    assert f"error: {tmp_path / 'out' / 'a.npy'}: cannot write (No space left on device); stopped" in result.output
    assert "done: 0 written" in result.output and "2 not done" in result.output
    assert len(writes) == 1  # stopped at the first failure instead of failing every image
    assert [p.name for p in (tmp_path / "out").rglob("*")] == [MANIFEST_NAME]  # and left nothing else behind


def test_readme_documents_the_exit_codes():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "Exit code: 0 = every image written or skipped, 1 = some inputs failed, 2 = usage or model error" in readme
    assert "3 = an output could not be written" in readme


# ------------------------------------------------------------------------------------- broken model folders
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("model") / "tiny"
    PrimeDepthPipeline.from_pretrained("tiny-random", device="cpu").save_pretrained(root)
    return root


def _edit_index(**changes):
    def edit(d):
        index = json.loads((d / "model_index.json").read_text())
        index.update(changes)
        (d / "model_index.json").write_text(json.dumps(index))

    return edit


def _reshape_a_tensor(part, file="diffusion_pytorch_model.safetensors"):
    def edit(d):
        state = load_file(str(d / part / file))
        state["conv_norm_out.weight" if part == "unet" else sorted(state)[0]] = torch.zeros(5)
        save_file(state, str(d / part / file))

    return edit


def _drop_a_tensor(part, file="diffusion_pytorch_model.safetensors"):
    def edit(d):
        state = load_file(str(d / part / file))
        del state["conv_norm_out.weight" if part == "unet" else sorted(state)[0]]
        save_file(state, str(d / part / file))

    return edit


def _other_text_encoder(d):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig.from_pretrained(d / "text_encoder")
    config.hidden_size, config.intermediate_size = 48, 96
    shutil.rmtree(d / "text_encoder")
    CLIPTextModel(config).save_pretrained(d / "text_encoder")


BROKEN = {
    "model_index not JSON": (
        lambda d: (d / "model_index.json").write_text("{oops"),
        "model_index.json: not valid JSON",
    ),
    "config not JSON": (
        lambda d: (d / "labeller" / "config.json").write_text("{"),
        "labeller/config.json: not valid JSON",
    ),
    "wrong shape": (_reshape_a_tensor("unet"), "tensor conv_norm_out.weight has shape (5,), expected (32,)"),
    "missing tensor": (_drop_a_tensor("unet"), "tensor conv_norm_out.weight missing (expected shape (32,))"),
    "missing text tensor": (_drop_a_tensor("text_encoder", "model.safetensors"), "text_encoder/model.safetensors"),
    "timestep not int": (_edit_index(timestep="1"), "'timestep' must be a non-negative integer, found '1'"),
    "absolute sub-model": (_edit_index(text_encoder="/etc"), "text_encoder = '/etc' points outside the model folder"),
    "escaping sub-model": (_edit_index(tokenizer="../x/tokenizer"), "'../x/tokenizer' points outside the model"),
    "other text encoder": (
        _other_text_encoder,
        "width (hidden_size 48) does not match the UNet's context size (cross_attention_dim 32)",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_model_folders_give_one_error_line_and_exit_2(saved_model, tmp_path, rgb_image, case):
    edit, message = BROKEN[case]
    model = tmp_path / "model"
    shutil.copytree(saved_model, model)
    edit(model)
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    result = _predict(tmp_path / "x.png", "-o", tmp_path / "out", "--model", model)
    assert result.exit_code == 2, result.output
    assert message in result.output and "error: " in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_external_sub_models_load_only_when_allowed(saved_model, tmp_path):
    from primedepth.conversion.model_folder import ModelError

    model = tmp_path / "model"
    shutil.copytree(saved_model, model)
    _edit_index(text_encoder=str(saved_model / "text_encoder"))(model)
    with pytest.raises(ModelError, match="outside the model folder"):
        PrimeDepthPipeline.from_pretrained(model, device="cpu")
    pipe = PrimeDepthPipeline.from_pretrained(model, device="cpu", allow_external_components=True)
    assert pipe.text_encoder.config.hidden_size == 32


# ------------------------------------------------------------------------------------------------ convert
@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda sd: sd.__setitem__("labeller.convs_merge.5.weight", [1, 2, 3]),
            "state_dict entry 'labeller.convs_merge.5.weight' is a list, not a tensor",
        ),
        (
            lambda sd: sd.__setitem__("labeller.convs_merge.5.weight", torch.zeros(3, 3)),
            "tensor merge_convs.5.weight has shape (3, 3), expected (291, 291, 1, 1)",
        ),
    ],
)
def test_convert_names_bad_state_dict_entries(reference_dir, tmp_path, damage, message):
    ckpt = torch.load(reference_dir / "official_tiny.ckpt", weights_only=True)
    damage(ckpt["state_dict"])
    torch.save(ckpt, tmp_path / "bad.ckpt")
    result = CliRunner().invoke(
        main,
        [
            "convert",
            str(tmp_path / "bad.ckpt"),
            str(tmp_path / "out"),
            "--config",
            str(reference_dir / "official_tiny_config.json"),
            "--local-files-only",
        ],
    )
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_convert_output_respects_the_umask(reference_dir, tmp_path):
    old = os.umask(0o022)
    try:
        result = CliRunner().invoke(
            main,
            [
                "convert",
                str(reference_dir / "official_tiny.ckpt"),
                str(tmp_path / "m"),
                "--config",
                str(reference_dir / "official_tiny_config.json"),
                "--local-files-only",
            ],
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "m" / "unet").stat().st_mode & 0o777 == 0o755
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
