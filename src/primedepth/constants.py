"""Numbers and names used across the package, defined once."""

from __future__ import annotations

import os
from pathlib import Path

# Stable Diffusion 2.x latent scaling (the VAE latent is multiplied by it before the UNet).
SD_LATENT_SCALE = 0.18215
# Stable Diffusion 2.x's noise schedule: diffusers' "scaled_linear" (betas linear in sqrt(beta)) over 1000 steps.
SD_NOISE_SCHEDULE = {"beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}


def cache_root() -> Path:
    """Where primedepth keeps converted models and the caption cache (``$PRIMEDEPTH_CACHE``, read at each call)."""
    return Path(os.environ.get("PRIMEDEPTH_CACHE", Path.home() / ".cache" / "primedepth"))


# The noise of the single step: "sampled" (the authors' pipeline: drawn from the seed) or "none" (no noise added).
NOISE_MODES = ("sampled", "none")

# Said with every result of the tiny-random model (the command line's model line, the app's result label).
TINY_RANDOM_CAVEAT = "random weights: a smoke test, its depth is meaningless"

# The named numeric configurations of the pipeline: name -> (dtype of the frozen VAE, UNet and text tower, dtype of
# the trained labeller, TF32 allowed for fp32 matmuls and convolutions on CUDA, what it is). "auto" picks one per
# device (pipelines/precision.py); the names are here so the command line offers them without importing torch.
PRECISION_CONFIGS = {
    "fp32": ("float32", "float32", False, "everything fp32"),
    "tf32": ("float32", "float32", True, "fp32 weights, TF32 matmuls and convolutions on CUDA"),
    "bf16-frozen": ("bfloat16", "float32", False, "bf16 VAE, UNet and text tower, fp32 labeller"),
    "bf16": ("bfloat16", "bfloat16", False, "everything bf16"),
    "fp16-frozen": ("float16", "float32", False, "fp16 VAE, UNet and text tower, fp32 labeller"),
    "fp16": ("float16", "float16", False, "everything fp16"),
}
PRECISION_CHOICES = ("auto", *PRECISION_CONFIGS)

# The benchmarks of ``primedepth eval`` (each a dataset class in evaluation/datasets/ and a protocol file in
# evaluation/configs/ of this name).
BENCHMARK_DATASETS = ("nyu", "kitti", "eth3d", "scannet", "diode", "nuscenes_c", "rabbitai")

# The captioner of the authors' pipeline (BLIP-2 OPT-2.7b).
DEFAULT_CAPTIONER = "Salesforce/blip2-opt-2.7b"

# File name extensions treated as images when folders are searched.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".jfif"}
)

# Image formats a folder search recognises but cannot read: such files are reported (name and format), not skipped.
UNSUPPORTED_IMAGE_EXTENSIONS = {".heic": "HEIC", ".heif": "HEIF"}

# Segmentation label that marks pixels without a class (ignored by the losses and metrics).
IGNORE_LABEL = 255

# Two seeds combine into one as outer * SEED_STRIDE + inner: item i of rendered-scene data seed s is rendered with
# seed s * SEED_STRIDE + i, and the shard stream shuffles each (seed, epoch, slot) with its own combined seed.
SEED_STRIDE = 1_000_003
# The data seed of the held-out rendered scenes (never used for training).
HELD_OUT_SEED = 7
