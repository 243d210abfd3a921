"""The frozen side of PrimeDepth's single step: image -> noisy latent at t = 1 -> preimage of the frozen UNet.

``FrozenStableDiffusion`` holds the frozen VAE encoder and UNet with the step's settings and is the one place that
draws the noises, encodes and extracts the preimage; the pipeline, the trainer, the verification and the benchmarks
all go through it, then hand the preimage to a labeller. The labeller's ``preimage_request()`` names the preimage
``source`` it reads, and that picks the extractor: ``"unet"`` (``PreimageExtractor``, one UNet pass) or
``"latent"`` (``LatentPreimageExtractor``, the no-preimage baseline's noisy latent).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from ..banded import release_freed_memory
from ..preimage import Preimage
from .latent_noising import NoisyLatent, noise_latent, posterior_moments, schedule_coefficients
from .latent_preimage import LatentPreimageExtractor
from .preimage_extractor import PreimageExtractor

EXTRACTORS = (PreimageExtractor, LatentPreimageExtractor)  # the preimage sources, by their ``source`` names


def draw_noise(latent_shape: tuple[int, ...], generators: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior and t = 1 noise for a batch: each image's generator draws its pair (posterior first), so an
    image's noise does not depend on the batch it is in."""
    draws = [(torch.randn(latent_shape, generator=g), torch.randn(latent_shape, generator=g)) for g in generators]
    return torch.stack([d[0] for d in draws]), torch.stack([d[1] for d in draws])


class FrozenStableDiffusion:
    """Frozen VAE + UNet and the single-step ``settings`` (``scale_factor``, schedule, ``timestep``)."""

    def __init__(self, vae: AutoencoderKL, unet: UNet2DConditionModel, settings: dict):
        self.vae, self.unet, self.settings = vae, unet, settings
        self.extractors = {cls.source: cls(unet) for cls in EXTRACTORS}
        self.extractor = self.extractors[PreimageExtractor.source]  # the production one (UNet pass)

    @property
    def coefficients(self) -> tuple[float, float]:
        s = self.settings
        return schedule_coefficients(s["beta_start"], s["beta_end"], s["num_train_timesteps"], s["timestep"])

    def latent_size(self, size) -> tuple[int, int]:
        """The VAE encoder's output size: each stride-2 conv with (0, 1) padding maps n to (n - 2) // 2 + 1."""
        h, w = size
        for _ in range(len(self.vae.config.block_out_channels) - 1):
            h, w = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        return h, w

    def latent_shape(self, size) -> tuple[int, int, int]:
        return (self.vae.config.latent_channels, *self.latent_size(size))

    def encode(
        self,
        images: torch.Tensor,
        noise_posterior: torch.Tensor | None = None,
        noise_t: torch.Tensor | None = None,
        *,
        low_memory: bool = False,
    ) -> NoisyLatent:
        """``images`` (B, 3, H, W) in [-1, 1] -> posterior, scaled latent and x_t; ``None`` noises: posterior mean,
        no t-noise. ``low_memory`` runs the encoder's full-resolution layers in row bands."""
        sqrt_ab, sqrt_1mab = self.coefficients
        device = images.device
        return noise_latent(
            posterior_moments(self.vae, images, low_memory=low_memory),
            scale_factor=self.settings["scale_factor"],
            sqrt_alpha_bar=sqrt_ab,
            sqrt_one_minus_alpha_bar=sqrt_1mab,
            noise_posterior=None if noise_posterior is None else noise_posterior.to(device),
            noise_t=None if noise_t is None else noise_t.to(device),
        )

    def extract(self, x_t: torch.Tensor, context: torch.Tensor, *, source: str = "unet", **request) -> Preimage:
        """The preimage of ``x_t`` at the step's timestep from the extractor of ``source`` (``request``: the rest of
        the labeller's ``preimage_request()``, and the ``naive``/``complete`` switches of the UNet pass)."""
        if source not in self.extractors:
            raise ValueError(f"unknown preimage source {source!r}; one of {', '.join(self.extractors)}")
        timestep = torch.tensor([self.settings["timestep"]], device=x_t.device)
        context = context.to(device=x_t.device, dtype=x_t.dtype)
        return self.extractors[source](x_t, timestep, context, **request)

    def preimage(
        self,
        images: torch.Tensor,
        context: torch.Tensor,
        noise_posterior: torch.Tensor | None = None,
        noise_t: torch.Tensor | None = None,
        *,
        low_memory: bool = False,
        **request,
    ) -> Preimage:
        """Encode, noise and extract: the frozen half of the step."""
        device = images.device
        x_t = self.encode(images, noise_posterior, noise_t, low_memory=low_memory).x_t
        del images
        if low_memory:
            release_freed_memory(device)
        preimage = self.extract(x_t, context, **request)
        if low_memory:
            release_freed_memory(device)
        return preimage
