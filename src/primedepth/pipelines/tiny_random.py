"""``tiny-random``: a complete PrimeDepth pipeline with tiny random weights, built offline in well under a second.

It exercises every code path (VAE encoder, frozen UNet with attention maps, text tower, fusion, refiner, heads) at
the shapes of the official tiny reference model; its depth maps are meaningless. For smoke tests and CI only.
"""

from __future__ import annotations

import copy

import torch
from transformers import CLIPTextConfig, CLIPTextModel

from ..conversion.official_config import (
    FULL_OFFICIAL_CONFIG,
    labeller_kwargs_from_official,
    noise_kwargs_from_official,
)
from ..models.frozen.stable_diffusion import build_unet, build_vae
from ..models.frozen.text_encoder import CONTEXT_LENGTH, byte_level_tokenizer
from ..models.trained.labeller import PrimeDepthLabeller

# The official layout at toy width: every structural choice of the full model, with a 32-wide UNet and text context,
# a 16-wide VAE and a 32-wide depth-head input.
TINY_OFFICIAL_CONFIG = copy.deepcopy(FULL_OFFICIAL_CONFIG)
TINY_OFFICIAL_CONFIG["unet"].update(model_channels=32, channel_mult=[1, 2, 3, 3], num_head_channels=32, context_dim=32)
TINY_OFFICIAL_CONFIG["vae_ddconfig"]["ch"] = 16
TINY_OFFICIAL_CONFIG["labeller"]["channels2predictor"] = 32


def tiny_random_components(seed: int = 0, config: dict | None = None, tokenizer=None) -> dict:
    """``PrimeDepthPipeline``'s constructor arguments with random weights for ``config`` (official vocabulary;
    default ``TINY_OFFICIAL_CONFIG``) and a 2-layer text tower of the UNet's context width over ``tokenizer``
    (default: the byte-level one). Deterministic in ``seed``."""
    config = config or TINY_OFFICIAL_CONFIG
    tokenizer = tokenizer or byte_level_tokenizer()
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=config["unet"]["context_dim"],
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=CONTEXT_LENGTH,
        hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = build_vae(config["vae_ddconfig"], config["scale_factor"])
        unet = build_unet(config["unet"])
        text_encoder = CLIPTextModel(text_config)
        labeller = PrimeDepthLabeller(**labeller_kwargs_from_official(config))
    settings = {**noise_kwargs_from_official(config), "default_caption": "none"}
    return dict(
        vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, labeller=labeller, settings=settings
    )
