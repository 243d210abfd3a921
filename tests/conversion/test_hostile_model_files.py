"""A pickle that would run code, wherever a command reads one, is refused as one ``error:`` line naming the file
(exit 2) and never unpickled; settings and files that ask for a model's own code to run are ignored, with one note
saying so."""

import json
import os
import shutil

import pytest
import torch
from click.testing import CliRunner
from helpers import benchmark_files, tiny_peers
from PIL import Image

from primedepth.cli import main


class RunsCode:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _hostile_bin(folder, name="pytorch_model.bin"):
    """Replace the folder's weights with a pickle that runs code; returns the marker it would leave."""
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    marker = folder.parent / f"ran-{folder.name}"
    torch.save({"weight": RunsCode(marker)}, folder / name)
    return marker


def _refused(result, file):
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{file}: holds Python objects besides tensors" in errors[0], result.output
    assert isinstance(result.exception, SystemExit)


@pytest.fixture
def hostile_depth_anything(tiny_depth_anything, tmp_path):
    folder = tmp_path / "da"
    shutil.copytree(tiny_depth_anything, folder)
    return folder, _hostile_bin(folder)


def test_predict_ensemble_member(hostile_depth_anything, tmp_path, rgb_image):
    folder, marker = hostile_depth_anything
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    args = [str(tmp_path / "x.png"), "-o", str(tmp_path / "out"), "--model", "tiny-random"]
    result = CliRunner().invoke(main, ["predict", *args, "--ensemble", f"depth-anything-v2={folder}"])
    _refused(result, folder / "pytorch_model.bin")
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["depth-anything", "depth-anything-v2", "marigold-v1-1"])
def test_eval_peer(kind, hostile_depth_anything, tmp_path):
    if kind == "marigold-v1-1":
        folder = tiny_peers.save_tiny_marigold(tmp_path / "mg")
        file = folder / "unet" / "diffusion_pytorch_model.bin"
        marker = _hostile_bin(folder / "unet", file.name)
    else:
        folder, marker = hostile_depth_anything
        file = folder / "pytorch_model.bin"
    benchmark_files.make_scannet(tmp_path / "data", n=1)
    args = ["eval", "--dataset", "scannet", "--data-root", str(tmp_path / "data"), "--output", str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, "--model", f"{kind}={folder}", "--allow-partial"])
    _refused(result, file)
    assert not marker.exists()


def test_pseudo_label_depth_model(hostile_depth_anything, tmp_path, rgb_image):
    folder, marker = hostile_depth_anything
    (tmp_path / "images").mkdir()
    Image.fromarray(rgb_image).save(tmp_path / "images" / "x.png")
    args = [str(tmp_path / "images"), str(tmp_path / "labels"), "--depth-model", str(folder), "--no-segmentation"]
    result = CliRunner().invoke(main, ["pseudo-label", *args, "--caption-model", "none", "--local-files-only"])
    _refused(result, folder / "pytorch_model.bin")
    assert not marker.exists()


def test_verify_reference_checkpoint(reference_dir, tmp_path):
    checkpoint = tmp_path / "official.ckpt"
    torch.save({"state_dict": {"w": RunsCode(tmp_path / "ran")}}, checkpoint)
    args = ["--checkpoint", checkpoint, "--config", reference_dir / "official_tiny_config.json"]
    result = CliRunner().invoke(
        main, ["verify-reference", *map(str, args), "--vectors", str(reference_dir / "official_tiny_io.safetensors")]
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(checkpoint) in errors[0] and "--trust-pickle" in result.output
    assert not (tmp_path / "ran").exists()


def test_code_in_a_model_folder_is_ignored_with_one_note(tmp_path, rgb_image, caplog):
    from primedepth import PrimeDepthPipeline

    model = tmp_path / "model"
    PrimeDepthPipeline.from_pretrained("tiny-random", device="cpu").save_pretrained(model)
    index = json.loads((model / "model_index.json").read_text())
    (model / "model_index.json").write_text(json.dumps({**index, "trust_remote_code": True, "custom_pipeline": "x"}))
    config = json.loads((model / "unet" / "config.json").read_text())
    (model / "unet" / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "evil.Model"}}))
    (model / "unet" / "evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    with caplog.at_level("WARNING"):
        result = CliRunner().invoke(
            main, ["predict", str(tmp_path / "x.png"), "-o", str(tmp_path / "out"), "--model", str(model)]
        )
    assert result.exit_code == 0, result.output
    notes = [r.getMessage() for r in caplog.records if "never imports or runs code" in r.getMessage()]
    assert len(notes) == 1
    for what in (
        "trust_remote_code in model_index.json",
        "custom_pipeline in model_index.json",
        "auto_map in unet/config.json",
        "unet/evil.py",
    ):
        assert what in notes[0]
    assert not (tmp_path / "ran").exists()
