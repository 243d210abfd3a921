"""The official hyper-parameters of a PrimeDepth checkpoint, read off its tensor shapes.

A checkpoint found on the hub comes without its YAML config, so every size is inferred from the tensors
(official ldm key names): UNet channels, levels, residual blocks per level and which levels have attention from
``model.diffusion_model.input_blocks.*``; the context width from the cross-attention keys; the VAE from
``first_stage_model.encoder.*``; the refiner ratio, predictor width and head outputs from ``labeller.*``. The
attention head size is not a parameter of any tensor; it is the one value for which the official fusion-channel
arithmetic (``models.layout.fusion_layout``, heads x (64 self + 77 cross maps) per block) reproduces every fusion
and refiner conv of the checkpoint. The result is in the format of ``official_tiny_config.json``; when the shapes
say the model is full-size, it is checked against the published config.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence

from ..models.layout import fusion_layout, unet_layout
from .official_checkpoint import LABELLER_PREFIX, UNET_PREFIX, VAE_PREFIX
from .official_config import FULL_OFFICIAL_CONFIG

N_SA_MAPS, N_CA_MAPS = 64, 77  # official constants: 8 x 8 key regions, 77 text tokens


class ConfigInferenceError(ValueError):
    pass


def _indices(shapes: Mapping[str, Sequence[int]], pattern: str) -> list[int]:
    found = {int(m[1]) for k in shapes if (m := re.match(pattern, k))}
    return sorted(found)


def _shape(shapes, key: str) -> Sequence[int]:
    if key not in shapes:
        raise ConfigInferenceError(f"not an official PrimeDepth checkpoint: tensor {key} is missing")
    return shapes[key]


def infer_unet(shapes) -> dict:
    """ldm ``UNetModel`` hyper-parameters except ``num_head_channels`` (see :func:`infer_official_config`)."""
    p = UNET_PREFIX
    mc, in_ch = _shape(shapes, p + "input_blocks.0.0.weight")[:2]
    blocks = _indices(shapes, re.escape(p) + r"input_blocks\.(\d+)\.")
    down = [i for i in blocks if p + f"input_blocks.{i}.0.op.weight" in shapes]
    levels = len(down) + 1
    if (len(blocks) - 1 - len(down)) % levels:
        raise ConfigInferenceError(
            f"UNet encoder with {len(blocks)} blocks and {len(down)} downsamplers does not split into levels"
        )
    res_blocks = (len(blocks) - 1 - len(down)) // levels
    channel_mult, attention_resolutions, i = [], [], 1
    for level in range(levels):
        out = _shape(shapes, p + f"input_blocks.{i}.0.in_layers.2.weight")[0]
        if out % mc:
            raise ConfigInferenceError(f"UNet level {level} has {out} channels, not a multiple of {mc}")
        channel_mult.append(out // mc)
        if p + f"input_blocks.{i}.1.proj_in.weight" in shapes:
            attention_resolutions.append(2**level)
        i += res_blocks + (level < levels - 1)
    cross = [v for k, v in shapes.items() if k.startswith(p) and k.endswith("attn2.to_k.weight")]
    if not cross:
        raise ConfigInferenceError("the UNet has no cross-attention, so it is not a Stable Diffusion 2.x UNet")
    proj_in = next(v for k, v in shapes.items() if k.startswith(p) and k.endswith(".proj_in.weight"))
    depth = len({m[1] for k in shapes if (m := re.search(r"middle_block\.1\.transformer_blocks\.(\d+)\.", k))})
    return {
        "image_size": 32,
        "in_channels": in_ch,
        "out_channels": _shape(shapes, p + "out.2.weight")[0],
        "model_channels": mc,
        "attention_resolutions": attention_resolutions[::-1],
        "num_res_blocks": res_blocks,
        "channel_mult": channel_mult,
        "num_head_channels": None,
        "use_spatial_transformer": True,
        "use_linear_in_transformer": len(proj_in) == 2,
        "transformer_depth": depth,
        "context_dim": cross[0][1],
        "legacy": False,
    }


def infer_vae(shapes) -> dict:
    """The VAE ``ddconfig`` (encoder side; ``out_ch`` from the decoder when the checkpoint has one)."""
    p = VAE_PREFIX + "encoder."
    ch, in_ch = _shape(shapes, p + "conv_in.weight")[:2]
    levels = _indices(shapes, re.escape(p) + r"down\.(\d+)\.")
    if any(k.startswith(p + f"down.{lv}.attn") for lv in levels for k in shapes):
        raise ConfigInferenceError("the VAE has attention outside its middle block, so it is not an SD VAE")
    res_blocks = len(_indices(shapes, re.escape(p) + r"down\.0\.block\.(\d+)\."))
    ch_mult = [_shape(shapes, p + f"down.{lv}.block.0.conv2.weight")[0] // ch for lv in levels]
    decoder_out = shapes.get(VAE_PREFIX + "decoder.conv_out.weight")
    return {
        "double_z": True,
        "z_channels": _shape(shapes, p + "conv_out.weight")[0] // 2,
        "resolution": 256,
        "in_channels": in_ch,
        "out_ch": decoder_out[0] if decoder_out else in_ch,
        "ch": ch,
        "ch_mult": ch_mult,
        "num_res_blocks": res_blocks,
        "attn_resolutions": [],
        "dropout": 0.0,
    }


def _conv_io(shapes, key: str) -> tuple[int, int]:
    shape = shapes.get(LABELLER_PREFIX + key)
    return (shape[1], shape[0]) if shape else (0, 0)


def _fusion_matches(shapes, unet: dict, lab: dict, num_head_channels: int) -> bool:
    """Whether the official channel arithmetic with these settings gives every fusion and refiner conv."""
    layout = unet_layout(
        unet["model_channels"],
        unet["channel_mult"],
        unet["num_res_blocks"],
        unet["attention_resolutions"],
        num_head_channels,
    )
    steps = fusion_layout(
        layout,
        model_channels=unet["model_channels"],
        channel_mult=unet["channel_mult"],
        num_res_blocks=unet["num_res_blocks"],
        attention_resolutions=unet["attention_resolutions"],
        num_head_channels=num_head_channels,
        refiner_model_ratio=lab["refiner_model_ratio"],
        use_self_attn_maps=lab["use_self_attn_maps"],
        use_cross_attn_maps=lab["use_cross_attn_maps"],
        use_feature_maps=lab["use_feature_maps"],
        n_sa_maps=N_SA_MAPS,
        n_ca_maps=N_CA_MAPS,
        scale_input_features_with_model=lab["scale_input_features_with_model"],
    )
    for i, step in enumerate(steps):
        expected = {
            f"convs_features.{i}.weight": (step.feature_in, step.feature_out) if step.feature_out else (0, 0),
            f"convs_attentions.{i}.weight": (step.attention_in, step.attention_out),
            f"convs_merge.{i}.weight": (step.merge_in, step.merge_out),
            f"refiner.output_blocks.{i}.0.in_layers.2.weight": (step.refiner_in, step.refiner_out),
        }
        if any(_conv_io(shapes, key) != io for key, io in expected.items()):
            return False
    return True


def infer_labeller(shapes, unet: dict) -> tuple[dict, int]:
    """The labeller config and the UNet's attention head size (the one that explains the fusion convs)."""
    p = LABELLER_PREFIX
    refiner = _indices(shapes, re.escape(p) + r"refiner\.output_blocks\.(\d+)\.")
    if not refiner:
        raise ConfigInferenceError("not an official PrimeDepth checkpoint: no labeller.refiner tensors")
    last_out = _shape(shapes, p + f"refiner.output_blocks.{refiner[-1]}.0.in_layers.2.weight")[0]
    ratio = last_out / (unet["model_channels"] * unet["channel_mult"][0])
    segmentation = shapes.get(p + "label_predictor.conv_out.weight")
    base = {
        "infusion2refiner": "cat",
        "refiner_model_ratio": ratio,
        "use_feature_maps": any(k.startswith(p + "convs_features.") for k in shapes),
        "n_ca_maps": N_CA_MAPS,
        "n_sa_maps": N_SA_MAPS,
        "channels2predictor": _shape(shapes, p + "refiner.out.2.weight")[0],
        "label_mode": {
            "depth": _shape(shapes, p + "depth_predictor.conv_out.weight")[0],
            "segmentation": segmentation[0] if segmentation else 0,
        },
        "zero_convs": False,
    }
    mc = unet["model_channels"]
    fits = []
    for use_sa, use_ca in ((True, True), (True, False), (False, True), (False, False)):
        for scaled in (True, False):
            lab = {
                **base,
                "use_self_attn_maps": use_sa,
                "use_cross_attn_maps": use_ca,
                "scale_input_features_with_model": scaled,
            }
            for nhc in (d for d in range(1, mc + 1) if mc % d == 0):
                if _fusion_matches(shapes, unet, lab, nhc):
                    fits.append((lab, nhc))
    if not fits:
        raise ConfigInferenceError(
            "the labeller's fusion and refiner convs match no official channel layout "
            "(PrimeDepth with infusion2refiner='cat')"
        )
    if len({(tuple(sorted((k, str(v)) for k, v in lab.items())), nhc) for lab, nhc in fits}) > 1:
        with_maps = [f for f in fits if f[0]["use_self_attn_maps"] or f[0]["use_cross_attn_maps"]]
        sd_default = [f for f in fits if f[1] == 64 and not with_maps]
        if with_maps or not sd_default:
            raise ConfigInferenceError(f"the tensor shapes fit {len(fits)} configurations; pass --config")
        fits = sd_default  # no attention maps fused: head size 64 as every SD 2.x UNet
    return fits[0]


def infer_official_config(shapes: Mapping[str, Sequence[int]]) -> dict:
    """Official-style config (``unet``, ``vae_ddconfig``, ``labeller``, schedule) of a checkpoint's state dict,
    given as key -> shape. Full-size models are checked against the published config."""
    shapes = {k: tuple(v) for k, v in shapes.items()}
    unet = infer_unet(shapes)
    if unet["transformer_depth"] != 1:
        raise ConfigInferenceError(f"UNet transformer depth {unet['transformer_depth']} (official: 1)")
    labeller, unet["num_head_channels"] = infer_labeller(shapes, unet)
    config = {
        "unet": unet,
        "vae_ddconfig": infer_vae(shapes),
        "labeller": labeller,
        **{k: copy.deepcopy(FULL_OFFICIAL_CONFIG[k]) for k in ("scale_factor", "noise_schedule", "timestep")},
    }
    if unet["model_channels"] == FULL_OFFICIAL_CONFIG["unet"]["model_channels"]:
        check_full_size(config)
    return config


def check_full_size(config: dict) -> None:
    """Every inferred value of a full-size model must equal the published config."""
    differences = [
        f"{part}.{key}: inferred {config[part].get(key)!r}, published {value!r}"
        for part in ("unet", "vae_ddconfig", "labeller")
        for key, value in FULL_OFFICIAL_CONFIG[part].items()
        if key not in ("image_size", "resolution", "zero_convs") and config[part].get(key) != value
    ]
    if differences:
        raise ConfigInferenceError(
            "a full-size checkpoint that differs from the published PrimeDepth config:\n  " + "\n  ".join(differences)
        )
