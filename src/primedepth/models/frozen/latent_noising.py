"""Image -> noisy latent x_t, as the official single step does it.

Official: sample the VAE posterior (mean + std * noise), scale by the SD latent scale (0.18215), then noise it
to t = 1 of the 1000-step scaled-linear schedule. Both draws were unseeded there; here they come from a caller's
generator (reproducible), or are switched off with ``noise="none"`` (posterior mean, no t-noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL

from ..banded import encoder_low_memory


def scaled_linear_alpha_bar(beta_start: float, beta_end: float, num_train_timesteps: int) -> np.ndarray:
    """alpha-bar of every timestep of the scaled-linear schedule (Stable Diffusion's; diffusers' ``scaled_linear``),
    float64 like ldm."""
    betas = np.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


def schedule_coefficients(beta_start: float, beta_end: float, num_train_timesteps: int, timestep: int):
    """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) of the scaled-linear schedule, as floats."""
    alpha_bar = scaled_linear_alpha_bar(beta_start, beta_end, num_train_timesteps)[timestep]
    return float(np.float32(np.sqrt(alpha_bar))), float(np.float32(np.sqrt(1.0 - alpha_bar)))


@dataclass
class NoisyLatent:
    posterior_mean: torch.Tensor
    posterior_std: torch.Tensor
    z: torch.Tensor
    x_t: torch.Tensor


def posterior_moments(vae: AutoencoderKL, image: torch.Tensor, *, low_memory: bool = False) -> torch.Tensor:
    """The VAE encoder's posterior moments (mean and log-variance stacked on channels) of ``image`` in [-1, 1];
    ``low_memory`` runs the encoder's full-resolution layers in row bands (same numbers, far lower peak memory)."""
    moments = encoder_low_memory(vae.encoder, image) if low_memory else vae.encoder(image)
    return vae.quant_conv(moments) if vae.quant_conv is not None else moments


def noise_latent(
    moments: torch.Tensor,
    *,
    scale_factor: float,
    sqrt_alpha_bar: float,
    sqrt_one_minus_alpha_bar: float,
    noise_posterior: torch.Tensor | None,
    noise_t: torch.Tensor | None,
) -> NoisyLatent:
    """Sample the posterior, scale, noise to t. ``None`` noises mean: use the posterior mean / add no t-noise."""
    mean, logvar = moments.chunk(2, dim=1)
    std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
    sample = mean if noise_posterior is None else mean + std * noise_posterior.to(mean)
    z = scale_factor * sample
    x_t = sqrt_alpha_bar * z
    if noise_t is not None:
        x_t = x_t + sqrt_one_minus_alpha_bar * noise_t.to(z)
    return NoisyLatent(mean, std, z, x_t)
