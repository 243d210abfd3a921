"""Official checkpoint conversion: safe loading, the OpenCLIP text tower mapping, and the converted folder."""

import argparse

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from helpers.open_clip import open_clip_text_tower
from PIL import Image
from transformers import CLIPTextModel

from primedepth import PrimeDepthPipeline
from primedepth.cli import main
from primedepth.conversion.official_checkpoint import (
    UntrustedCheckpointError,
    fit_key_prefix,
    load_official_checkpoint,
    text_tower_to_transformers,
)
from primedepth.conversion.official_config import load_official_config
from primedepth.conversion.official_parts import build_official_parts, text_config_from_weights


def open_clip_forward(state, ids, heads):
    """OpenCLIP's ``encode_text`` up to ``ln_final`` (the 'last' layer PrimeDepth uses), written independently."""
    x = state["token_embedding.weight"][ids] + state["positional_embedding"]
    n, width = x.shape[1], x.shape[2]
    mask = torch.full((n, n), float("-inf")).triu(1)
    layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        mha = torch.nn.MultiheadAttention(width, heads, batch_first=True)
        mha.load_state_dict(
            {
                "in_proj_weight": state[p + "attn.in_proj_weight"],
                "in_proj_bias": state[p + "attn.in_proj_bias"],
                "out_proj.weight": state[p + "attn.out_proj.weight"],
                "out_proj.bias": state[p + "attn.out_proj.bias"],
            }
        )
        h = F.layer_norm(x, (width,), state[p + "ln_1.weight"], state[p + "ln_1.bias"])
        x = x + mha(h, h, h, attn_mask=mask, need_weights=False)[0]
        h = F.layer_norm(x, (width,), state[p + "ln_2.weight"], state[p + "ln_2.bias"])
        h = F.linear(
            F.gelu(F.linear(h, state[p + "mlp.c_fc.weight"], state[p + "mlp.c_fc.bias"])),
            state[p + "mlp.c_proj.weight"],
            state[p + "mlp.c_proj.bias"],
        )
        x = x + h
    return F.layer_norm(x, (width,), state["ln_final.weight"], state["ln_final.bias"])


def test_open_clip_text_tower_converts_to_the_same_function():
    state = open_clip_text_tower(width=128)
    converted = text_tower_to_transformers(state)
    model = CLIPTextModel(text_config_from_weights(converted)).eval()
    missing, unexpected = model.load_state_dict(fit_key_prefix(converted, model), strict=False)
    assert unexpected == [] and all("position_ids" in k for k in missing)
    ids = torch.tensor([[512, 65, 66, 67, 513] + [0] * 72])
    with torch.no_grad():
        ours = model(input_ids=ids).last_hidden_state
        ref = open_clip_forward(state, ids, heads=2)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_pickles_are_loaded_weights_only_unless_trusted(tmp_path):
    ckpt = {"state_dict": {"labeller.x": torch.ones(1)}, "hyper_parameters": argparse.Namespace(lr=1)}
    torch.save(ckpt, tmp_path / "lightning.ckpt")
    with pytest.raises(UntrustedCheckpointError, match="--trust-pickle"):
        load_official_checkpoint(tmp_path / "lightning.ckpt")
    assert load_official_checkpoint(tmp_path / "lightning.ckpt", trust_pickle=True)["labeller.x"].item() == 1
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises((ValueError, UntrustedCheckpointError), match="junk.ckpt"):
        load_official_checkpoint(tmp_path / "junk.ckpt")


def test_official_parts_list_every_misfit_tensor_and_load_the_rest(reference_dir):
    state = load_official_checkpoint(reference_dir / "official_tiny.ckpt")
    state["labeller.convs_merge.5.weight"] = torch.zeros(3, 3)
    del state["labeller.convs_merge.5.bias"]
    state["labeller.nonsense.weight"] = torch.zeros(1)
    parts = build_official_parts(load_official_config(reference_dir / "official_tiny_config.json"), state)
    assert parts.problems == [
        "labeller.nonsense.weight",
        "labeller: tensor merge_convs.5.weight has shape (3, 3), expected (291, 291, 1, 1)",
        "labeller: no tensor for merge_convs.5.bias",
    ]
    torch.testing.assert_close(parts.labeller.state_dict()["merge_convs.4.bias"], state["labeller.convs_merge.4.bias"])
    torch.testing.assert_close(
        parts.vae.state_dict()["quant_conv.weight"], state["first_stage_model.quant_conv.weight"]
    )
    assert parts.text_encoder is None and parts.noise["scale_factor"] == 0.18215


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_convert_cli_produces_a_loadable_model(reference_dir, tiny_official_with_text, tmp_path, rgb_image):
    src = tiny_official_with_text
    out = tmp_path / "converted"
    result = CliRunner().invoke(
        main,
        [
            "convert",
            str(src / "tiny_with_text.ckpt"),
            str(out),
            "--config",
            str(reference_dir / "official_tiny_config.json"),
            "--tokenizer",
            str(src / "tokenizer"),
            "--local-files-only",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "labeller 732 tensors" in result.output and "text_encoder" in result.output
    pipe = PrimeDepthPipeline.from_pretrained(out, device="cpu")
    official = torch.load(src / "tiny_with_text.ckpt", weights_only=True)["state_dict"]
    torch.testing.assert_close(
        pipe.labeller.state_dict()["refiner.3.attention.block.ff.proj_in.weight"],
        official["labeller.refiner.output_blocks.3.1.transformer_blocks.0.ff.net.0.proj.weight"],
    )
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    predicted = CliRunner().invoke(
        main,
        [
            "predict",
            str(tmp_path / "x.png"),
            "-o",
            str(tmp_path / "o"),
            "--model",
            str(out),
            "--caption",
            "a box",
            "--local-files-only",
        ],
    )
    assert predicted.exit_code == 0, predicted.output
    assert np.load(tmp_path / "o" / "x.npy").shape == (75, 93)


def test_convert_refuses_foreign_folders_and_broken_checkpoints(reference_dir, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"keep me")
    cfg = str(reference_dir / "official_tiny_config.json")
    refused = CliRunner().invoke(
        main,
        [
            "convert",
            str(reference_dir / "official_tiny.ckpt"),
            str(tmp_path / "photos"),
            "--config",
            cfg,
            "--local-files-only",
        ],
    )
    assert refused.exit_code == 2 and "not a PrimeDepth model folder" in refused.output
    assert (tmp_path / "photos" / "holiday.jpg").read_bytes() == b"keep me"

    ckpt = torch.load(reference_dir / "official_tiny.ckpt", weights_only=True)
    del ckpt["state_dict"]["labeller.convs_merge.5.weight"]
    torch.save(ckpt, tmp_path / "broken.ckpt")
    broken = CliRunner().invoke(
        main, ["convert", str(tmp_path / "broken.ckpt"), str(tmp_path / "out"), "--config", cfg, "--local-files-only"]
    )
    assert broken.exit_code == 2 and "merge_convs.5.weight" in broken.output
    assert not (tmp_path / "out").exists()
