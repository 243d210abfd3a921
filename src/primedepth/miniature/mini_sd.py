"""mini-SD: a small latent diffusion model in the SD 2.x layout, trained by us on procedurally rendered scenes.

PrimeDepth needs a frozen backbone that learned to *generate* images. No pretrained weights can be downloaded on the
machines this project is built on, so this module trains one from scratch, in two stages:

1. **VAE** (diffusers ``AutoencoderKL``, 8x down-sampling, SD layout and GroupNorm rules): L1 + L2 reconstruction
   plus a small KL term (SD's VAE also used LPIPS and a patch GAN; we do not). Afterwards the latent scale factor is
   set to ``1 / std`` of the training latents, SD's own convention.
2. **UNet + text encoder** (``UNet2DConditionModel`` with cross-attention down/up blocks and a middle block, and a
   small ``CLIPTextModel``), trained jointly with the epsilon-prediction objective under the scaled-linear
   1000-step schedule (SD's, ``constants.SD_NOISE_SCHEDULE``), captions dropped to the empty prompt 10 % of the time.

The tokenizer (``tokenizer = "captions"``) is a CLIP BPE tokenizer whose merges are learned on the training captions
until each caption word is one token (``primedepth.models.frozen.text_encoder.caption_vocabulary_tokenizer``); a caption
is ~35 tokens. ``"bytes"`` keeps the byte alphabet only, which truncates a caption after 75 bytes (the first mini-SD).

The result is a pipeline folder in our layout (``model_index.json``, ``vae/``, ``unet/``, ``text_encoder/``,
``tokenizer/`` and a *random* ``labeller/`` that only carries the labeller configuration); ``primedepth train`` takes
it as ``model.frozen_from``.

Usage: ``python -m primedepth.miniature.mini_sd configs/mini-sd.toml [--set key.path=value ...]`` (TOML or JSON; the
config is not a ``primedepth train`` config, hence TOML in ``configs/``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from ..data.mixing import build_mixture
from ..models.frozen.latent_noising import scaled_linear_alpha_bar
from ..models.frozen.text_encoder import byte_level_tokenizer, caption_vocabulary_tokenizer, tokenize
from ..pipelines.pipeline import PrimeDepthPipeline
from ..pipelines.tiny_random import TINY_OFFICIAL_CONFIG

DEFAULTS = {
    "output_dir": "runs/mini-sd",
    "seed": 0,
    "threads": 0,  # 0 = torch default
    "architecture": "tiny",  # the official-style config of primedepth.pipelines.tiny_random (or a dict)
    "tokenizer": "bytes",  # or "captions": BPE merges learned on the training captions
    "data": {"seed": 0, "count": 4096, "resolution": [64, 64], "hflip": True},
    "vae": {
        "steps": 1500,
        "batch_size": 16,
        "lr": 1e-3,
        "warmup_steps": 50,
        "l1_weight": 1.0,
        "l2_weight": 1.0,
        "kl_weight": 1e-6,
        "log_every": 50,
    },
    "unet": {
        "steps": 3000,
        "batch_size": 32,
        "lr": 5e-4,
        "text_lr": 5e-4,
        "warmup_steps": 100,
        "caption_dropout": 0.1,
        "log_every": 100,
    },
}


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k.startswith("_"):
            continue
        if k not in out:
            raise KeyError(f"unknown mini-sd config key {k!r}")
        out[k] = merge(out[k], v) if isinstance(out[k], dict) and isinstance(v, dict) else v
    return out


def load_config(path: str | Path | None, overrides=()) -> dict:
    raw = {}
    if path:
        text = Path(path).read_text()
        if str(path).endswith(".toml"):
            import tomllib

            raw = tomllib.loads(text)
        else:
            raw = json.loads(text)
    config = merge(DEFAULTS, raw)
    for item in overrides:
        key, _, value = item.partition("=")
        *parents, last = key.split(".")
        node = config
        for p in parents:
            node = node[p]
        if last not in node:
            raise KeyError(f"unknown mini-sd config key {key!r}")
        try:
            node[last] = json.loads(value)
        except json.JSONDecodeError:
            node[last] = value
    return config


def official_config(config: dict) -> dict:
    arch = config["architecture"]
    if arch == "tiny":
        return copy.deepcopy(TINY_OFFICIAL_CONFIG)
    if isinstance(arch, dict):
        return copy.deepcopy(arch)
    raise ValueError(f"architecture must be 'tiny' or an official-style config dict, got {arch!r}")


def build_tokenizer(config: dict, captions: list[str]):
    kind = config["tokenizer"]
    if kind == "bytes":
        return byte_level_tokenizer()
    if kind == "captions":
        return caption_vocabulary_tokenizer(captions)
    raise ValueError(f"tokenizer must be 'bytes' or 'captions', got {kind!r}")


# ------------------------------------------------------------------------------------------------------ data
def render_dataset(seed: int, count: int, resolution) -> tuple[torch.Tensor, list[str]]:
    """``count`` scenes of the training mixture's scene source (data seed ``seed``, items 0..count-1), centre
    crops at ``resolution``: images (N, 3, H, W) in [-1, 1] and captions."""
    ds = build_mixture(
        [{"kind": "scenes", "seed": int(seed), "length": int(count)}], resolution, 0, train=False, hflip=False
    )
    images, captions = [], []
    for i in range(len(ds)):
        s = ds[i]
        images.append(s["image"])
        captions.append(s["caption"])
    return torch.stack(images).float(), captions


def batch_indices(step: int, batch: int, n: int, seed: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and flip flags of ``step``: a pure function of (seed, salt, step)."""
    rng = np.random.default_rng([int(seed), int(salt), int(step)])
    return rng.integers(0, n, size=batch), rng.random(batch) < 0.5


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float = 0.1) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    t = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


# ------------------------------------------------------------------------------------------------ objectives
def vae_loss(
    vae, x: torch.Tensor, settings: dict, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict]:
    """Reconstruction (L1 + L2) of a posterior sample plus ``kl_weight`` x KL(posterior || N(0, I)) per element."""
    posterior = vae.encode(x).latent_dist
    z = posterior.sample(generator=generator)
    rec = vae.decode(z).sample
    l1 = (rec - x).abs().mean()
    l2 = ((rec - x) ** 2).mean()
    kl = posterior.kl().mean() / z[0].numel()
    loss = settings["l1_weight"] * l1 + settings["l2_weight"] * l2 + settings["kl_weight"] * kl
    return loss, {"l1": l1.item(), "l2": l2.item(), "kl": kl.item()}


def make_noise_schedule(settings: dict) -> torch.Tensor:
    """alpha-bar of the scaled-linear schedule (SD's), one per training timestep, float32."""
    alpha_bar = scaled_linear_alpha_bar(settings["beta_start"], settings["beta_end"], settings["num_train_timesteps"])
    return torch.from_numpy(alpha_bar).float()


def caption_context(text_encoder, tokenizer, captions: list[str]) -> torch.Tensor:
    """The text tower's last hidden states for ``captions``: the UNet's cross-attention context."""
    return text_encoder(input_ids=tokenize(tokenizer, captions)).last_hidden_state


def unet_loss(
    unet,
    context: torch.Tensor,
    latents: torch.Tensor,
    alpha_bar: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Epsilon-prediction MSE at uniformly drawn timesteps; the text encoder gets gradients through ``context``."""
    b = latents.shape[0]
    t = torch.randint(0, alpha_bar.numel(), (b,), generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    ab = alpha_bar[t].view(b, 1, 1, 1)
    x_t = ab.sqrt() * latents + (1 - ab).sqrt() * noise
    pred = unet(x_t, t, encoder_hidden_states=context).sample
    return F.mse_loss(pred, noise)


@torch.no_grad()
def encode_latents(vae, images: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and standard deviations (unscaled) of ``images``."""
    means, stds = [], []
    for i in range(0, len(images), batch):
        posterior = vae.encode(images[i : i + batch]).latent_dist
        means.append(posterior.mean)
        stds.append(posterior.std)
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def sample_images(
    pipe, captions: list[str], resolution=(64, 64), steps: int = 50, guidance: float = 3.0, seed: int = 0
) -> torch.Tensor:
    """DDIM samples of the trained mini-SD for ``captions`` (classifier-free guidance against the empty
    prompt): images (B, 3, H, W) in [-1, 1]. A diagnostic that the backbone learned to generate scenes."""
    s = pipe.settings
    sched = DDIMScheduler(
        num_train_timesteps=s["num_train_timesteps"],
        beta_start=s["beta_start"],
        beta_end=s["beta_end"],
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    sched.set_timesteps(steps)
    b = len(captions)
    ctx = caption_context(pipe.text_encoder, pipe.tokenizer, list(captions) + [""] * b)
    size = (resolution[0] // 8, resolution[1] // 8)
    x = torch.randn((b, pipe.unet.config.in_channels, *size), generator=torch.Generator().manual_seed(seed))
    for t in sched.timesteps:
        eps = pipe.unet(torch.cat([x, x]), t, encoder_hidden_states=ctx).sample
        eps_c, eps_u = eps.chunk(2)
        x = sched.step(eps_u + guidance * (eps_c - eps_u), t, x).prev_sample
    return pipe.vae.decode(x / s["scale_factor"]).sample.clamp(-1, 1)


# ----------------------------------------------------------------------------------------------------- stages
def _log(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def _log_progress(log: Path | None, stage: str, step: int, settings: dict, loss: float, extra: dict, schedule, t0):
    """A training record every ``log_every`` steps and at the last one: loss, ``extra`` terms, rate, time so far."""
    if log is None or (step % settings["log_every"] != 0 and step != settings["steps"] - 1):
        return
    elapsed = round(time.time() - t0, 1)
    _log(
        log,
        {"stage": stage, "step": step, "loss": loss, **extra, "lr": schedule.get_last_lr()[0], "elapsed_s": elapsed},
    )


def _random_hflip(x: torch.Tensor, flip: np.ndarray) -> torch.Tensor:
    """``x`` with the samples where ``flip`` is set mirrored left to right."""
    return torch.where(torch.from_numpy(flip).view(-1, 1, 1, 1), x.flip(-1), x)


def train_vae(
    vae, images: torch.Tensor, settings: dict, seed: int, hflip: bool, log: Path | None = None
) -> list[float]:
    vae.requires_grad_(True)
    params = list(vae.parameters())
    optimizer = torch.optim.AdamW(params, lr=settings["lr"], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, settings["warmup_steps"], settings["steps"])
    )
    gen = torch.Generator().manual_seed(seed * 7919 + 1)
    vae.train()
    losses = []
    t0 = time.time()
    for step in range(settings["steps"]):
        idx, flip = batch_indices(step, settings["batch_size"], len(images), seed, 1)
        x = images[torch.from_numpy(idx)]
        if hflip:
            x = _random_hflip(x, flip)
        loss, terms = vae_loss(vae, x, settings, gen)
        losses.append(_optimizer_step(loss, optimizer, schedule, params))
        _log_progress(log, "vae", step, settings, loss.item(), terms, schedule, t0)
    vae.eval()
    return losses


def _optimizer_step(loss: torch.Tensor, optimizer, schedule, params) -> float:
    """Backward, clip to norm 1, step optimizer and schedule; returns the loss value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    schedule.step()
    return loss.item()


def train_unet(
    unet,
    text_encoder,
    tokenizer,
    latents: torch.Tensor,
    captions: list[str],
    alpha_bar: torch.Tensor,
    settings: dict,
    seed: int,
    hflip: bool,
    log: Path | None = None,
) -> list[float]:
    """``latents``: scaled posterior means, (N, C, h, w); a fresh posterior sample is not drawn (means only)."""
    unet.requires_grad_(True)
    text_encoder.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [
            {"params": list(unet.parameters()), "lr": settings["lr"]},
            {"params": list(text_encoder.parameters()), "lr": settings["text_lr"]},
        ],
        weight_decay=0.01,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, settings["warmup_steps"], settings["steps"])
    )
    gen = torch.Generator().manual_seed(seed * 7919 + 2)
    unet.train()
    text_encoder.train()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    losses = []
    t0 = time.time()
    for step in range(settings["steps"]):
        idx, flip = batch_indices(step, settings["batch_size"], len(latents), seed, 2)
        z = latents[torch.from_numpy(idx)]
        if hflip:  # a flipped image encodes to (approximately) the flipped latent
            z = _random_hflip(z, flip)
        rng = np.random.default_rng([seed, 3, step])
        caps = ["" if rng.random() < settings["caption_dropout"] else captions[i] for i in idx]
        loss = unet_loss(unet, caption_context(text_encoder, tokenizer, caps), z, alpha_bar, gen)
        losses.append(_optimizer_step(loss, optimizer, schedule, params))
        _log_progress(
            log,
            "unet",
            step,
            settings,
            loss.item(),
            {"loss_avg": float(np.mean(losses[-settings["log_every"] :]))},
            schedule,
            t0,
        )
    unet.eval()
    text_encoder.eval()
    return losses


def train_mini_sd(config: dict) -> Path:
    """Run both stages of ``config`` and write the frozen pipeline folder ``OUTPUT/model``; returns its path."""
    if config["threads"]:
        torch.set_num_threads(int(config["threads"]))
    out = Path(config["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    log = out / "log.jsonl"
    seed = int(config["seed"])
    torch.manual_seed(seed)
    data = config["data"]
    times = {}

    t0 = time.time()
    images, captions = render_dataset(data["seed"], data["count"], data["resolution"])
    times["render_s"] = time.time() - t0
    _log(log, {"stage": "data", "count": len(images), "seconds": round(times["render_s"], 1)})
    pipe = PrimeDepthPipeline.tiny_random(
        seed, config=official_config(config), tokenizer=build_tokenizer(config, captions)
    )

    t0 = time.time()
    vae_losses = train_vae(pipe.vae, images, config["vae"], seed, data["hflip"], log)
    times["vae_s"] = time.time() - t0

    means, stds = encode_latents(pipe.vae, images)
    scale = float(1.0 / means.std())
    pipe.vae.register_to_config(scaling_factor=scale)
    pipe.settings["scale_factor"] = scale
    with torch.no_grad():
        rec = torch.cat([pipe.vae.decode(means[i : i + 64]).sample for i in range(0, len(means), 64)])
    rec_l1 = float((rec.clamp(-1, 1) - images).abs().mean())
    _log(
        log,
        {
            "stage": "vae_done",
            "scale_factor": scale,
            "recon_l1_mean_latent": rec_l1,
            "seconds": round(times["vae_s"], 1),
        },
    )

    alpha_bar = make_noise_schedule(pipe.settings)
    t0 = time.time()
    unet_losses = train_unet(
        pipe.unet,
        pipe.text_encoder,
        pipe.tokenizer,
        means * scale,
        captions,
        alpha_bar,
        config["unet"],
        seed,
        data["hflip"],
        log,
    )
    times["unet_s"] = time.time() - t0
    for m in (pipe.vae, pipe.unet, pipe.text_encoder):
        m.requires_grad_(False)
    pipe.save_pretrained(out / "model")
    summary = {
        "times_s": {k: round(v, 1) for k, v in times.items()},
        "scale_factor": scale,
        "vae_loss_first_last": [vae_losses[0], float(np.mean(vae_losses[-50:]))],
        "vae_recon_l1": rec_l1,
        "unet_loss_first_last": [unet_losses[0], float(np.mean(unet_losses[-100:]))],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _log(log, {"stage": "done", **summary})
    return out / "model"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m primedepth.miniature.mini_sd", description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    print(train_mini_sd(load_config(args.config, args.set)))


if __name__ == "__main__":
    main()
