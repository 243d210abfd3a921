"""``tiny-random``: a complete PrimeDepth pipeline with tiny random weights, built offline in well under a second.

It exercises every code path (VAE encoder, frozen UNet with attention maps, text tower, fusion, refiner, heads) at
the shapes of the official tiny reference model; its depth maps are meaningless. For smoke tests and CI only.
"""

from __future__ import annotations

import torch
from transformers import CLIPTextConfig, CLIPTextModel

from ..constants import SD_LATENT_SCALE
from ..conversion.official_config import labeller_kwargs_from_official, noise_kwargs_from_official
from ..models.frozen_sd import build_unet, build_vae
from ..models.labeller import PrimeDepthLabeller
from ..models.text_encoder import CONTEXT_LENGTH, byte_level_tokenizer

TINY_OFFICIAL_CONFIG = {
    "unet": {
        "image_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "model_channels": 32,
        "attention_resolutions": [4, 2, 1],
        "num_res_blocks": 2,
        "channel_mult": [1, 2, 3, 3],
        "num_head_channels": 32,
        "use_spatial_transformer": True,
        "use_linear_in_transformer": True,
        "transformer_depth": 1,
        "context_dim": 32,
        "legacy": False,
    },
    "vae_ddconfig": {
        "double_z": True,
        "z_channels": 4,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 16,
        "ch_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_resolutions": [],
        "dropout": 0.0,
    },
    "labeller": {
        "infusion2refiner": "cat",
        "refiner_model_ratio": 0.5,
        "use_self_attn_maps": True,
        "use_cross_attn_maps": True,
        "use_feature_maps": True,
        "n_ca_maps": 77,
        "n_sa_maps": 64,
        "channels2predictor": 32,
        "label_mode": {"depth": 3, "segmentation": 150},
        "zero_convs": False,
        "scale_input_features_with_model": True,
    },
    "scale_factor": SD_LATENT_SCALE,
    "noise_schedule": {"kind": "scaled_linear", "linear_start": 0.00085, "linear_end": 0.012, "timesteps": 1000},
    "timestep": 1,
}


def build_tiny_random_pipeline(seed: int = 0, config: dict | None = None, tokenizer=None):
    """Random weights for ``config`` (official vocabulary; default ``TINY_OFFICIAL_CONFIG``) with a 2-layer text
    tower of the UNet's context width over ``tokenizer`` (default: the byte-level one)."""
    from .pipeline import PrimeDepthPipeline

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
    return PrimeDepthPipeline(vae, unet, text_encoder, tokenizer, labeller, settings)
