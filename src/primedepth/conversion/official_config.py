"""The official PrimeDepth hyper-parameters (the authors' ``configs/inference.yaml``) in the JSON format of
``official_tiny_config.json``, and their translation into our components' configs."""

from __future__ import annotations

import copy
from pathlib import Path

from ..constants import SD_LATENT_SCALE, SD_NOISE_SCHEDULE
from ..utils.json_files import read_json

FULL_OFFICIAL_CONFIG = {
    "unet": {
        "image_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "model_channels": 320,
        "attention_resolutions": [4, 2, 1],
        "num_res_blocks": 2,
        "channel_mult": [1, 2, 4, 4],
        "num_head_channels": 64,
        "use_spatial_transformer": True,
        "use_linear_in_transformer": True,
        "transformer_depth": 1,
        "context_dim": 1024,
        "legacy": False,
    },
    "vae_ddconfig": {
        "double_z": True,
        "z_channels": 4,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 128,
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
        "channels2predictor": 512,
        "label_mode": {"depth": 3, "segmentation": 150},
        "zero_convs": False,
        "scale_input_features_with_model": True,
    },
    "scale_factor": SD_LATENT_SCALE,
    "noise_schedule": {
        "kind": "scaled_linear",
        "linear_start": SD_NOISE_SCHEDULE["beta_start"],
        "linear_end": SD_NOISE_SCHEDULE["beta_end"],
        "timesteps": SD_NOISE_SCHEDULE["num_train_timesteps"],
    },
    "timestep": 1,
}


def load_official_config(path: str | Path | None) -> dict:
    """Read an official-style JSON config; ``None`` gives the full-size official model."""
    if path is None:
        return copy.deepcopy(FULL_OFFICIAL_CONFIG)
    path = Path(path)
    config = read_json(path, "config file")
    missing = [k for k in ("unet", "vae_ddconfig", "labeller") if k not in config]
    if missing:
        raise ValueError(f"{path}: not an official-style PrimeDepth config, missing {', '.join(missing)}")
    return config


def labeller_kwargs_from_official(config: dict) -> dict:
    """``PrimeDepthLabeller`` arguments from an official config (the heads reuse the VAE ``ddconfig``)."""
    unet, lab, dd = config["unet"], config["labeller"], config["vae_ddconfig"]
    if lab.get("infusion2refiner", "cat") != "cat":
        raise ValueError("only infusion2refiner='cat' (the published PrimeDepth) is supported")
    label_mode = lab.get("label_mode", {"depth": 3, "segmentation": 150})
    return dict(
        model_channels=unet["model_channels"],
        channel_mult=list(unet["channel_mult"]),
        num_res_blocks=unet["num_res_blocks"],
        attention_resolutions=list(unet["attention_resolutions"]),
        num_head_channels=unet["num_head_channels"],
        context_dim=unet["context_dim"],
        use_linear_in_transformer=bool(unet.get("use_linear_in_transformer", True)),
        refiner_model_ratio=lab.get("refiner_model_ratio", 0.5),
        use_self_attn_maps=lab.get("use_self_attn_maps", True),
        use_cross_attn_maps=lab.get("use_cross_attn_maps", True),
        use_feature_maps=lab.get("use_feature_maps", True),
        n_sa_maps=lab.get("n_sa_maps", 64),
        n_ca_maps=lab.get("n_ca_maps", 77),
        scale_input_features_with_model=lab.get("scale_input_features_with_model", False),
        channels2predictor=lab.get("channels2predictor", 512),
        depth_channels=label_mode.get("depth", 3),
        segmentation_classes=label_mode.get("segmentation", 0),
        head_ch=dd["ch"],
        head_ch_mult=list(dd["ch_mult"]),
        head_num_res_blocks=dd["num_res_blocks"],
    )


def latent_scale_from_official(config: dict) -> float:
    """The factor between VAE posterior samples and UNet latents: the config's ``scale_factor``, else Stable
    Diffusion's. The VAE config, the converted folder's settings and the noising step all take it from here."""
    return config.get("scale_factor", SD_LATENT_SCALE)


def noise_kwargs_from_official(config: dict) -> dict:
    """Schedule and timestep of the single denoising step."""
    schedule = config.get("noise_schedule", FULL_OFFICIAL_CONFIG["noise_schedule"])
    if schedule.get("kind", "scaled_linear") != "scaled_linear":
        raise ValueError(f"unsupported noise schedule {schedule.get('kind')!r}")
    return dict(
        scale_factor=latent_scale_from_official(config),
        beta_start=schedule["linear_start"],
        beta_end=schedule["linear_end"],
        num_train_timesteps=schedule["timesteps"],
        timestep=config.get("timestep", 1),
    )
