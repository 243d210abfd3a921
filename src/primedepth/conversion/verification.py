"""Prove that a converted model computes what the official code computes.

``verify_vectors`` rebuilds the model from an official-style config + checkpoint, feeds the stored inputs of each
case (``image``, ``context``, ``noise_posterior``, ``noise_t``) and compares every stored intermediate.
``verify_manifest`` checks, without weights (meta tensors), that a full official checkpoint maps onto our
components one to one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..constants import SD_LATENT_SCALE
from ..models.frozen.single_step import FrozenStableDiffusion
from ..models.frozen.stable_diffusion import build_unet, build_vae, unet_config_from_official, vae_config_from_official
from ..models.trained.labeller import PrimeDepthLabeller
from .official_checkpoint import load_official_checkpoint, split_official_state_dict
from .official_config import labeller_kwargs_from_official, load_official_config, noise_kwargs_from_official

INPUT_NAMES = ("image", "context", "noise_posterior", "noise_t")
TOLERANCE = 1e-4


@dataclass
class Comparison:
    name: str
    relative_error: float
    shape: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return self.relative_error <= TOLERANCE


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| / max |ref| (inf on a shape mismatch)."""
    if ours is None or tuple(ours.shape) != tuple(ref.shape):
        return float("inf")
    scale = ref.abs().max().clamp_min(1e-30)
    return float((ours.double() - ref.double()).abs().max() / scale)


@dataclass
class OfficialModel:
    """The frozen parts and the labeller rebuilt from an official config + state dict."""

    vae: torch.nn.Module
    unet: torch.nn.Module
    labeller: PrimeDepthLabeller
    noise: dict
    unplaced: list[str]


def build_official_model(config_path, checkpoint_path, trust_pickle: bool = False) -> OfficialModel:
    config = load_official_config(config_path)
    state = load_official_checkpoint(checkpoint_path, trust_pickle=trust_pickle)
    unet_cfg = unet_config_from_official(config["unet"])
    vae_cfg = vae_config_from_official(config["vae_ddconfig"], config.get("scale_factor", SD_LATENT_SCALE))
    converted = split_official_state_dict(state, unet_cfg, vae_cfg, len(config["vae_ddconfig"]["ch_mult"]))
    unet = build_unet(config["unet"])
    vae = build_vae(config["vae_ddconfig"], config.get("scale_factor", SD_LATENT_SCALE))
    labeller = PrimeDepthLabeller(**labeller_kwargs_from_official(config))
    problems = list(converted.unplaced)
    for name, module, weights, optional in (
        ("unet", unet, converted.unet, ()),
        ("vae", vae, converted.vae, ("decoder.", "post_quant_conv.")),
        ("labeller", labeller, converted.labeller, ()),
    ):
        result = module.load_state_dict(weights, strict=False)
        problems += [f"{name}: missing {k}" for k in result.missing_keys if not k.startswith(optional)]
        problems += [f"{name}: unexpected {k}" for k in result.unexpected_keys]
    for module in (unet, vae, labeller):
        module.eval().requires_grad_(False)
    return OfficialModel(vae, unet, labeller, noise_kwargs_from_official(config), problems)


def _case_names(vectors: dict[str, torch.Tensor]) -> list[str]:
    return sorted({k.split(".", 1)[0] for k in vectors if k.endswith(".image")})


@torch.no_grad()
def compute_case(model: OfficialModel, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every intermediate the reference stores, named like the reference (without the case prefix)."""
    frozen = FrozenStableDiffusion(model.vae, model.unet, model.noise)
    latent = frozen.encode(inputs["image"], inputs["noise_posterior"], inputs["noise_t"])
    preimage = frozen.extract(latent.x_t, inputs["context"], complete=True, **model.labeller.preimage_request())
    labels = model.labeller(preimage, segmentation=True, return_intermediates=True)
    out = {
        "posterior_mean": latent.posterior_mean,
        "posterior_std": latent.posterior_std,
        "z": latent.z,
        "x_t": latent.x_t,
        "refiner_out": labels.refiner_out,
        "depth": labels.depth,
        "segmentation": labels.segmentation,
    }
    named_maps = {f"input_block-{i}": m for i, m in enumerate(preimage.encoder_maps)}
    named_maps["mid_block"] = preimage.mid_maps
    named_maps.update({f"out_block-{i}": m for i, m in enumerate(preimage.decoder_maps)})
    for block, maps in named_maps.items():
        if maps is not None:
            out[f"attn.self.{block}"] = maps.self_maps
            out[f"attn.cross.{block}"] = maps.cross_maps
    for i, merged in enumerate(labels.merged):
        if merged is not None:
            out[f"merged.{i}"] = merged
    return out


def verify_vectors(config_path, checkpoint_path, vectors_path, trust_pickle: bool = False):
    """Returns (comparisons, problems); problems are structural (unmapped keys, missing outputs)."""
    from safetensors.torch import load_file

    model = build_official_model(config_path, checkpoint_path, trust_pickle)
    vectors = load_file(str(vectors_path))
    comparisons, problems = [], list(model.unplaced)
    for case in _case_names(vectors):
        inputs = {name: vectors[f"{case}.{name}"] for name in INPUT_NAMES}
        ours = compute_case(model, inputs)
        for key in sorted(k for k in vectors if k.startswith(case + ".")):
            name = key[len(case) + 1 :]
            if name in INPUT_NAMES:
                continue
            comparisons.append(Comparison(key, relative_error(ours.get(name), vectors[key]), tuple(vectors[key].shape)))
    if not comparisons:
        problems.append(f"{vectors_path}: no cases found (expected keys like 'a.image')")
    return comparisons, problems


def verify_manifest(manifest_path, config_path=None) -> list[str]:
    """Problems found when mapping every tensor of an official manifest onto our full-size components."""
    from accelerate import init_empty_weights

    manifest = json.loads(Path(manifest_path).read_text())
    tensors = manifest["tensors"]
    config = load_official_config(config_path)
    unet_cfg = unet_config_from_official(config["unet"])
    vae_cfg = vae_config_from_official(config["vae_ddconfig"], config.get("scale_factor", SD_LATENT_SCALE))
    state = {k: torch.empty(shape, device="meta") for k, shape in tensors.items()}
    converted = split_official_state_dict(state, unet_cfg, vae_cfg, len(config["vae_ddconfig"]["ch_mult"]))
    with init_empty_weights():
        modules = {
            "unet": build_unet(config["unet"]),
            "vae": build_vae(config["vae_ddconfig"], config.get("scale_factor", SD_LATENT_SCALE)),
            "labeller": PrimeDepthLabeller(**labeller_kwargs_from_official(config)),
        }
    problems = list(converted.unplaced)
    for name, weights in (("unet", converted.unet), ("vae", converted.vae), ("labeller", converted.labeller)):
        expected = {k: tuple(v.shape) for k, v in modules[name].state_dict().items()}
        for key, value in weights.items():
            if key not in expected:
                problems.append(f"{name}: {key} has no parameter")
            elif tuple(value.shape) != expected[key]:
                problems.append(f"{name}: {key} is {tuple(value.shape)}, parameter is {expected[key]}")
        problems += [f"{name}: parameter {k} gets no tensor" for k in expected if k not in weights]
    mapped = len(converted.unet) + len(converted.vae) + len(converted.labeller)
    if not problems and mapped < len(tensors):
        problems.append(f"only {mapped} of {len(tensors)} tensors were mapped")
    return problems
