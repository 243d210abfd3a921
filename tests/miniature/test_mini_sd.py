"""mini-SD training: the VAE and diffusion objectives optimise, the noise schedule is SD's, and the saved folder is a
frozen model that ``primedepth train`` accepts. Tiny sizes (32x32 scenes): seconds on CPU."""

import json
from pathlib import Path

import pytest
import torch

from primedepth.miniature import mini_sd
from primedepth.pipelines.pipeline import PrimeDepthPipeline
from primedepth.training.config import load_config
from primedepth.training.trainer import Trainer


@pytest.fixture(scope="module")
def scenes():
    return mini_sd.render_dataset(seed=0, count=8, resolution=(32, 32))


def test_rendered_dataset_is_deterministic_and_in_range(scenes):
    images, captions = scenes
    assert images.shape == (8, 3, 32, 32)
    assert -1.0 <= float(images.min()) and float(images.max()) <= 1.0
    again, captions2 = mini_sd.render_dataset(seed=0, count=2, resolution=(32, 32))
    assert torch.equal(again, images[:2]) and captions2 == captions[:2]
    assert all(isinstance(c, str) and c for c in captions)


def test_noise_schedule_is_scaled_linear():
    settings = {"beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}
    ab = mini_sd.make_noise_schedule(settings)
    assert ab.shape == (1000,)
    assert ab[0].item() == pytest.approx(1 - 0.00085, rel=1e-6)
    assert ab[-1].item() == pytest.approx(0.0047, abs=3e-4)  # SD's alpha-bar at t = 999
    assert bool((ab[1:] < ab[:-1]).all())


def _optimise(loss_now, opt, steps: int = 15):
    """Loss before and after ``steps`` optimiser steps on the same fixed batch and noise."""
    before = loss_now().item()
    for _ in range(steps):
        loss = loss_now()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return before, loss_now().item()


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_vae_objective_is_optimised(scenes):
    images, _ = scenes
    pipe = PrimeDepthPipeline.tiny_random(0)
    vae = pipe.vae.requires_grad_(True).train()
    c = dict(mini_sd.DEFAULTS["vae"])
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)

    def loss_now():
        return mini_sd.vae_loss(vae, images, c, torch.Generator().manual_seed(0))[0]

    before, after = _optimise(loss_now, opt)
    assert after < 0.8 * before, (before, after)


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_diffusion_objective_trains_unet_and_text_encoder(scenes):
    images, captions = scenes
    pipe = PrimeDepthPipeline.tiny_random(0)
    latents, _ = mini_sd.encode_latents(pipe.vae, images)
    latents = latents / latents.std()
    ab = mini_sd.make_noise_schedule(pipe.settings)
    unet, text = pipe.unet.requires_grad_(True).train(), pipe.text_encoder.requires_grad_(True).train()
    text_before = {k: v.clone() for k, v in text.state_dict().items()}
    opt = torch.optim.Adam(list(unet.parameters()) + list(text.parameters()), lr=1e-3)

    def loss_now():  # same timesteps and noise every call
        context = mini_sd.caption_context(text, pipe.tokenizer, captions)
        return mini_sd.unet_loss(unet, context, latents, ab, torch.Generator().manual_seed(0))

    before, after = _optimise(loss_now, opt)
    assert after < 0.8 * before, (before, after)
    moved = [k for k, v in text.state_dict().items() if not torch.equal(v, text_before[k])]
    assert moved, "the text encoder got no gradient through the cross-attention"


def test_saved_mini_sd_is_a_frozen_model_for_the_trainer(tmp_path):
    from click.testing import CliRunner

    from primedepth.cli import main

    toml = Path(__file__).resolve().parents[2] / "configs" / "mini-sd.toml"
    sets = [
        f"output_dir={json.dumps(str(tmp_path / 'sd'))}",
        "data.count=4",
        "data.resolution=[32, 32]",
        "vae.steps=2",
        "vae.batch_size=2",
        "unet.steps=2",
        "unet.batch_size=2",
    ]
    wrong = CliRunner().invoke(main, ["train", str(toml)])
    assert wrong.exit_code == 2 and "primedepth train-mini-sd" in wrong.output
    result = CliRunner().invoke(main, ["train-mini-sd", str(toml), *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    model_dir = tmp_path / "sd" / "model"
    for part in ("vae", "unet", "text_encoder", "tokenizer", "labeller"):
        assert (model_dir / part).is_dir(), part
    summary = json.loads((tmp_path / "sd" / "summary.json").read_text())
    settings = json.loads((model_dir / "model_index.json").read_text())
    assert settings["scale_factor"] == pytest.approx(summary["scale_factor"])
    assert settings["scale_factor"] != pytest.approx(0.18215)  # measured from the trained VAE's latents

    reference = PrimeDepthPipeline.tiny_random(0)
    trainer = Trainer(
        load_config(
            None,
            extra={
                "output_dir": str(tmp_path / "pd"),
                "model": {"frozen_from": str(model_dir)},
                "data": {"resolution": [32, 32], "train": [{"kind": "scenes", "length": 4}], "val": []},
                "train": {"max_steps": 2, "batch_size": 2},
                "checkpoint": {"every": 1000, "keep_last": 0},
                "logging": {"every": 1, "tensorboard": False},
            },
        )
    )
    # the trainer runs on the *trained* frozen parts, not on a fresh random model
    trained = trainer.frozen.unet.state_dict()
    assert any(not torch.equal(v, trained[k]) for k, v in reference.unet.state_dict().items())
    assert trainer.settings["scale_factor"] == pytest.approx(summary["scale_factor"])
    result = trainer.train()
    assert result["steps"] == 2 and all(torch.isfinite(torch.tensor(result["train_loss"])))


def test_repository_mini_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    sd = mini_sd.load_config(root / "mini-sd.toml")
    assert sd["data"]["resolution"] == [64, 64] and sd["vae"]["steps"] > 0 and sd["unet"]["steps"] > 0
    pd = load_config(root / "mini-primedepth.json")
    assert pd["model"]["frozen_from"] == str(Path(sd["output_dir"]) / "model")
    assert pd["data"]["val"][0]["length"] >= 200 and pd["data"]["val"][0]["seed"] != pd["data"]["train"][0]["seed"]
    baseline = load_config(root / "mini-primedepth-random.json")
    assert baseline["model"]["frozen_from"] == "tiny-random"
    for key in ("train", "optim", "schedule", "data"):
        assert baseline[key] == pd[key], key  # same recipe and budget


def test_the_no_preimage_baseline_shares_the_recipe_and_the_labelled_set_is_small():
    root = Path(__file__).resolve().parents[2] / "configs"
    full = load_config(root / "mini-primedepth.json")
    base = load_config(root / "mini-primedepth-nopreimage.json")
    assert base["model"]["ablation"] == "no_preimage" and full["model"]["ablation"] == "full"
    for key in ("train", "optim", "schedule", "data", "validation", "seed"):
        assert base[key] == full[key], key  # same recipe, budget, labelled set and held-out scenes
    labelled = full["data"]["train"][0]
    unlabelled = mini_sd.load_config(root / "mini-sd.toml")["data"]
    assert labelled["length"] * 8 <= unlabelled["count"]  # the backbone saw far more images than the labeller
    assert labelled["seed"] == unlabelled["seed"]  # the labelled scenes are among mini-SD's training images
