"""Model folders whose parts are ``.bin`` files (what older diffusers / transformers saves wrote) get the same checks
as safetensors: read weights-only, every tensor present with its shape, one ``error:`` line and exit 2; a pickle
holding code is refused without running it."""

import os
import shutil

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from primedepth import PrimeDepthPipeline
from primedepth.cli import main

PARTS = {
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "labeller": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "text_encoder": ("model.safetensors", "pytorch_model.bin"),
}


class RunsCode:
    """Unpickling this runs a shell command (it leaves a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def bin_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("bin-model") / "tiny"
    PrimeDepthPipeline.from_pretrained("tiny-random", device="cpu").save_pretrained(root)
    for part, (safetensors_name, bin_name) in PARTS.items():
        torch.save(load_file(str(root / part / safetensors_name)), root / part / bin_name)
        (root / part / safetensors_name).unlink()
    return root


def _drop(part, key):
    def edit(d):
        file = d / part / PARTS[part][1]
        state = torch.load(file, weights_only=True)
        del state[key]
        torch.save(state, file)

    return edit


def _hostile(part):
    def edit(d):
        torch.save({"weight": RunsCode(d / "ran")}, d / part / PARTS[part][1])

    return edit


CASES = {
    "text encoder missing tensor": (
        _drop("text_encoder", "encoder.layers.0.layer_norm1.weight"),
        "text_encoder/pytorch_model.bin: text encoder weights do not match",
    ),
    "unet missing tensor": (
        _drop("unet", "conv_norm_out.weight"),
        "unet/diffusion_pytorch_model.bin: unet weights do not match",
    ),
    "labeller missing tensor": (
        _drop("labeller", "attention_convs.10.weight"),
        "tensor attention_convs.10.weight missing",
    ),
    "text encoder hostile pickle": (_hostile("text_encoder"), "text_encoder/pytorch_model.bin: holds Python objects"),
    "unet hostile pickle": (_hostile("unet"), "unet/diffusion_pytorch_model.bin: holds Python objects"),
    "vae not a pickle": (
        lambda d: (d / "vae" / PARTS["vae"][1]).write_bytes(b"junk"),
        "not a readable PyTorch weight file",
    ),
}


def _predict(tmp_path, model, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    return CliRunner().invoke(main, ["predict", str(tmp_path / "x.png"), "-o", str(tmp_path / "out"), "--model", model])


def test_a_complete_bin_model_predicts(bin_model, tmp_path, rgb_image, one_thread):
    result = _predict(tmp_path, str(bin_model), rgb_image)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "x.npy").is_file()


@pytest.mark.parametrize("case", list(CASES))
def test_broken_bin_files_give_one_error_line_and_exit_2(bin_model, tmp_path, rgb_image, case):
    edit, message = CASES[case]
    model = tmp_path / "model"
    shutil.copytree(bin_model, model)
    edit(model)
    result = _predict(tmp_path, str(model), rgb_image)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert isinstance(result.exception, SystemExit)
    assert not (model / "ran").exists()  # nothing was unpickled
    assert not (tmp_path / "out" / "x.npy").exists()
