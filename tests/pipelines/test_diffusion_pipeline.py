"""PrimeDepthPipeline as a diffusers DiffusionPipeline: the folders we write load with diffusers' own loader and predict
the same depth; older folders still load with ours; our loader never imports what a folder ships.

The weights each loader gives are compared bit for bit (both read the same safetensors files). The depth they predict
is compared within float rounding (1e-4 of the map's range): every weight is first copied into freshly allocated
(aligned) memory, as a user's run would hold it, but which kernels a CPU picks, and so their summation order, is the
machine's business (memory-mapped weights that are not 64-byte aligned differed by up to 1e-4 here)."""

import json
import logging

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from transformers import CLIPTextConfig, CLIPTextModel

from primedepth import PrimeDepthPipeline
from primedepth.conversion.convert import convert_official_checkpoint
from primedepth.conversion.model_folder import ModelError
from primedepth.conversion.model_index import LABELLER_MODULE, PIPELINE_MODULE

CODE_NOTE = "never imports or runs code"


def aligned(pipe: PrimeDepthPipeline) -> PrimeDepthPipeline:
    for module in pipe.modules.values():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.data = tensor.data.clone()
    return pipe


def depth(pipe: PrimeDepthPipeline, image) -> np.ndarray:
    return pipe(image, caption="a box", seed=3).inverse_depth[0]


def assert_same_depth(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * np.ptp(expected))


def assert_same_weights(pipe: PrimeDepthPipeline, other: PrimeDepthPipeline) -> None:
    for name, module in pipe.modules.items():
        theirs = other.modules[name].state_dict()
        assert module.state_dict().keys() == theirs.keys(), name
        assert all(torch.equal(v, theirs[k]) for k, v in module.state_dict().items()), name


def load_with_diffusers(folder) -> PrimeDepthPipeline:
    pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    assert type(pipe) is PrimeDepthPipeline
    return aligned(pipe)


def test_a_saved_pipeline_loads_with_diffusers_and_predicts_the_same_depth(tmp_path, rgb_image, caplog):
    source = aligned(PrimeDepthPipeline.tiny_random(seed=1))
    source.save_pretrained(tmp_path / "model")
    index = json.loads((tmp_path / "model" / "model_index.json").read_text())
    assert index["_class_name"] == [PIPELINE_MODULE, "PrimeDepthPipeline"]
    assert index["labeller"] == [LABELLER_MODULE, "PrimeDepthLabeller"] and index["vae"] == [
        "diffusers",
        "AutoencoderKL",
    ]
    assert index["text_encoder"] == "text_encoder" and index["timestep"] == 1

    by_diffusers = load_with_diffusers(tmp_path / "model")
    with caplog.at_level(logging.WARNING):
        ours = aligned(PrimeDepthPipeline.from_pretrained(tmp_path / "model", device="cpu"))
    assert not [r for r in caplog.records if CODE_NOTE in r.getMessage()]  # our own modules are not foreign code
    assert by_diffusers.settings == ours.settings == source.settings
    assert by_diffusers.config.settings == source.settings
    assert set(by_diffusers.components) == {"vae", "unet", "text_encoder", "tokenizer", "labeller"}
    assert_same_weights(ours, source)
    assert_same_weights(by_diffusers, source)
    expected = depth(source, rgb_image)
    assert_same_depth(depth(ours, rgb_image), expected)
    assert_same_depth(depth(by_diffusers, rgb_image), expected)


def test_a_converted_official_model_loads_with_diffusers_and_predicts_the_same_depth(
    reference_dir, tiny_official_with_text, tmp_path, rgb_image
):
    out = tmp_path / "converted"
    convert_official_checkpoint(
        tiny_official_with_text / "tiny_with_text.ckpt",
        out,
        config_path=reference_dir / "official_tiny_config.json",
        tokenizer=str(tiny_official_with_text / "tokenizer"),
        local_files_only=True,
    )
    ours = aligned(PrimeDepthPipeline.from_pretrained(out, device="cpu"))
    by_diffusers = load_with_diffusers(out)
    assert by_diffusers.settings["source_checkpoint"] == "tiny_with_text.ckpt"
    assert_same_weights(by_diffusers, ours)
    assert_same_depth(depth(by_diffusers, rgb_image), depth(ours, rgb_image))


def test_folders_in_the_older_layout_still_load(tmp_path, rgb_image):
    """Flat settings, ``_class_name`` a string, no pipeline modules: what earlier versions wrote."""
    source = aligned(PrimeDepthPipeline.tiny_random(seed=2))
    folder = tmp_path / "old"
    source.save_pretrained(folder)
    (folder / f"{PIPELINE_MODULE}.py").unlink()
    (folder / "labeller" / f"{LABELLER_MODULE}.py").unlink()
    old_index = {**source.settings, "_class_name": "PrimeDepthPipeline", "text_encoder": "text_encoder"}
    (folder / "model_index.json").write_text(json.dumps({**old_index, "tokenizer": "tokenizer"}))
    ours = aligned(PrimeDepthPipeline.from_pretrained(folder, device="cpu"))
    assert ours.settings == source.settings
    assert_same_weights(ours, source)
    assert_same_depth(depth(ours, rgb_image), depth(source, rgb_image))


def test_a_changed_pipeline_module_is_foreign_code_noted_and_never_run(tmp_path, caplog):
    folder = tmp_path / "model"
    PrimeDepthPipeline.tiny_random().save_pretrained(folder)
    module = folder / f"{PIPELINE_MODULE}.py"
    module.write_text(module.read_text() + f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    with caplog.at_level(logging.WARNING):
        PrimeDepthPipeline.from_pretrained(folder, device="cpu")
    notes = [r.getMessage() for r in caplog.records if CODE_NOTE in r.getMessage()]
    assert len(notes) == 1 and f"{PIPELINE_MODULE}.py" in notes[0] and LABELLER_MODULE not in notes[0]
    assert not (tmp_path / "ran").exists()


def test_diffusers_loading_keeps_our_settings_and_width_checks(tmp_path):
    folder = tmp_path / "model"
    PrimeDepthPipeline.tiny_random().save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "timestep": 1000}))
    with pytest.raises(ModelError, match="timestep 1000 is outside the schedule of 1000 steps"):
        DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    (folder / "model_index.json").write_text(json.dumps({**index, "text_encoder": "openai/clip-vit-large-patch14"}))
    with pytest.raises(ModelError, match="text_encoder = 'openai/clip-vit-large-patch14' is not a folder of the model"):
        DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    text = folder / "text_encoder"
    wide = CLIPTextConfig(**{**CLIPTextConfig.from_pretrained(text).to_dict(), "hidden_size": 64})
    CLIPTextModel(wide).save_pretrained(text)
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="does not match the UNet's context size"):
        DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)


def test_progress_bar_settings_are_diffusers(tiny_pipe, rgb_image, capsys):
    tiny_pipe(rgb_image, progress=True)
    assert "PrimeDepth" in capsys.readouterr().err
    tiny_pipe.set_progress_bar_config(disable=True)
    try:
        tiny_pipe(rgb_image, progress=True)
        assert "PrimeDepth" not in capsys.readouterr().err
    finally:
        tiny_pipe.set_progress_bar_config(desc="PrimeDepth", unit="img")


def test_model_offload_is_refused_with_what_to_do_instead(tiny_pipe):
    with pytest.raises(NotImplementedError, match="low_memory=True"):
        tiny_pipe.enable_model_cpu_offload(device="cuda")


def test_prepare_for_inference_is_nhwc_without_decoder_at_the_named_precision(rgb_image):
    pipe = PrimeDepthPipeline.tiny_random(seed=4)
    expected = depth(aligned(PrimeDepthPipeline.tiny_random(seed=4)), rgb_image)
    assert pipe.prepare_for_inference("fp32") is pipe
    assert pipe.channels_last and pipe.vae.decoder is None and pipe.dtype == torch.float32
    # NHWC kernels sum in another order: equal within float rounding of the map's range
    np.testing.assert_allclose(depth(pipe, rgb_image), expected, rtol=0, atol=1e-4 * np.ptp(expected))
    bf16 = PrimeDepthPipeline.tiny_random(seed=4).prepare_for_inference("bf16")
    assert bf16.dtype == torch.bfloat16 and bf16.labeller_dtype == torch.bfloat16


def test_a_training_checkpoint_loads_with_both_loaders_and_predicts_the_same_depth(tmp_path, rgb_image):
    from primedepth.training.checkpointing import Checkpointer, TrainingState

    source = aligned(PrimeDepthPipeline.tiny_random(seed=5))
    checkpointer = Checkpointer(tmp_path / "run", "tiny-random", source.settings, frozen_mode="symlink", keep_last=0)
    checkpointer.save_frozen_once(source.vae, source.unet, source.text_encoder, source.tokenizer)
    optimizer = torch.optim.SGD(source.labeller.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    folder = checkpointer.save(
        1, TrainingState(source.labeller, optimizer, scheduler, None, None), {"ablation": "full"}
    )
    expected = depth(source, rgb_image)
    for loaded in (aligned(PrimeDepthPipeline.from_pretrained(folder, device="cpu")), load_with_diffusers(folder)):
        assert_same_weights(loaded, source)
        assert_same_depth(depth(loaded, rgb_image), expected)
