"""Relative error of the pipeline's arithmetic against the official reference vectors, per precision split."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from ..conversion.verification import INPUT_NAMES, _case_names, build_official_model, relative_error
from ..pipelines.pipeline import PrimeDepthPipeline
from ..pipelines.precision import PRECISION_CHOICES
from .contenders import stub_text_encoder

PRECISION_SPLITS = {
    "fp32": dict(),
    "fp32 + channels_last": dict(channels_last=True),
    "fp32 + low_memory": dict(channels_last=True, low_memory=True),
    "bf16 UNet+VAE, fp32 labeller": dict(frozen_dtype=torch.bfloat16),
    "bf16 UNet+VAE, bf16 labeller": dict(frozen_dtype=torch.bfloat16, labeller_dtype=torch.bfloat16),
    "fp16 UNet+VAE, fp32 labeller": dict(frozen_dtype=torch.float16),
    # diagnostics: weights rounded to half precision and back, everything computed in fp32 (the error floor of
    # any configuration that stores the weights in that format)
    "bf16-rounded weights, fp32 compute": dict(round_weights=torch.bfloat16),
    "fp16-rounded weights, fp32 compute": dict(round_weights=torch.float16),
}


# Every named configuration of ``PrimeDepthPipeline.set_precision`` ("auto" as it resolves on the device).
NAMED_PRECISION_SPLITS = {name: dict(precision=name) for name in PRECISION_CHOICES}


def reference_errors(
    reference_dir: str | Path, splits: dict | None = None, device: str | torch.device = "cpu"
) -> dict[str, dict[str, float]]:
    """Relative error (max|diff| / max|ref|) of the pipeline's path against the official reference vectors, per
    precision split (``optimize`` switches, or ``precision=<name>`` for ``set_precision``), computed on ``device``:
    worst over the depth maps and segmentation logits of every case."""
    reference_dir = Path(reference_dir)
    vectors = load_file(str(reference_dir / "official_tiny_io.safetensors"))
    report = {}
    for name, options in (splits or PRECISION_SPLITS).items():
        options = dict(options)
        low_memory = options.pop("low_memory", False)
        round_weights = options.pop("round_weights", None)
        named = options.pop("precision", None)
        model = build_official_model(reference_dir / "official_tiny_config.json", reference_dir / "official_tiny.ckpt")
        text_encoder, tokenizer = stub_text_encoder(model.unet.config.cross_attention_dim)
        pipe = PrimeDepthPipeline(model.vae, model.unet, text_encoder, tokenizer, model.labeller, model.noise)
        pipe.to(device=device)
        if round_weights is not None:
            with torch.no_grad():
                for module in (pipe.vae, pipe.unet, pipe.labeller):
                    for p in module.parameters():
                        p.copy_(p.to(round_weights).float())
        pipe.optimize(**options)
        if named is not None:
            pipe.set_precision(named)
        errors = {}
        for case in _case_names(vectors):
            inputs = {n: vectors[f"{case}.{n}"].to(device) for n in INPUT_NAMES}
            out = pipe.predict_with_noise(
                inputs["image"],
                inputs["context"],
                inputs["noise_posterior"],
                inputs["noise_t"],
                segmentation=True,
                low_memory=low_memory,
            )
            for key in ("depth", "segmentation"):
                errors[f"{case}.{key}"] = relative_error(getattr(out, key).float().cpu(), vectors[f"{case}.{key}"])
        report[name] = {"worst": max(errors.values()), **errors}
    return report
