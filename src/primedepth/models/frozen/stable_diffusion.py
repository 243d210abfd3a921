"""The frozen Stable Diffusion 2.x parts as diffusers modules, configured from the official hyper-parameters.

The official VAE and UNet size their GroupNorms with the largest divisor of the channel count that is <= 32, and the
VAE uses eps 1e-5 where diffusers uses 1e-6; ``set_official_group_norms`` restores both after any load.
"""

from __future__ import annotations

import math

from diffusers import AutoencoderKL, UNet2DConditionModel

from ...constants import SD_LATENT_SCALE
from ..group_norms import largest_divisor_at_most, set_official_group_norms

VAE_GROUPNORM_EPS = 1e-5


def unet_config_from_official(unet: dict) -> dict:
    """diffusers ``UNet2DConditionModel`` config for an ldm ``UNetModel`` config (SD 2.x: linear transformers)."""
    channels = [unet["model_channels"] * m for m in unet["channel_mult"]]
    attn_levels = [2**level in unet["attention_resolutions"] for level in range(len(channels))]
    nhc = unet["num_head_channels"]
    if nhc <= 0:
        raise ValueError("the UNet config must set num_head_channels (SD 2.x style)")
    if unet.get("transformer_depth", 1) != 1:
        raise ValueError("only transformer_depth 1 is supported (as in every official PrimeDepth config)")
    return dict(
        sample_size=unet.get("image_size", 64),
        in_channels=unet["in_channels"],
        out_channels=unet["out_channels"],
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn_levels],
        up_block_types=["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn_levels)],
        block_out_channels=channels,
        layers_per_block=unet["num_res_blocks"],
        attention_head_dim=[c // nhc for c in channels],  # diffusers' SD 2 configs store head counts here
        cross_attention_dim=unet["context_dim"],
        use_linear_projection=bool(unet.get("use_linear_in_transformer", True)),
        norm_num_groups=largest_divisor_at_most(math.gcd(*channels), 32),
    )


def vae_config_from_official(ddconfig: dict, scale_factor: float = SD_LATENT_SCALE) -> dict:
    channels = [ddconfig["ch"] * m for m in ddconfig["ch_mult"]]
    if ddconfig.get("attn_resolutions"):
        raise ValueError("VAE configs with attention outside the middle block are not SD VAEs")
    return dict(
        in_channels=ddconfig["in_channels"],
        out_channels=ddconfig["out_ch"],
        down_block_types=["DownEncoderBlock2D"] * len(channels),
        up_block_types=["UpDecoderBlock2D"] * len(channels),
        block_out_channels=channels,
        layers_per_block=ddconfig["num_res_blocks"],
        latent_channels=ddconfig["z_channels"],
        norm_num_groups=largest_divisor_at_most(math.gcd(*channels), 32),
        sample_size=ddconfig.get("resolution", 256),
        scaling_factor=scale_factor,
    )


def official_unet(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """Apply the official GroupNorm group rule (a no-op for SD 2.1's channel counts)."""
    return set_official_group_norms(unet)


def official_vae(vae: AutoencoderKL) -> AutoencoderKL:
    return set_official_group_norms(vae, eps=VAE_GROUPNORM_EPS)


def build_unet(unet: dict) -> UNet2DConditionModel:
    return official_unet(UNet2DConditionModel(**unet_config_from_official(unet)))


def build_vae(ddconfig: dict, scale_factor: float = SD_LATENT_SCALE) -> AutoencoderKL:
    return official_vae(AutoencoderKL(**vae_config_from_official(ddconfig, scale_factor)))
