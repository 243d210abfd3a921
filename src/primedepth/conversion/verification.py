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
from safetensors.torch import load_file

from ..models.frozen.single_step import FrozenStableDiffusion
from .official_checkpoint import load_official_checkpoint
from .official_config import load_official_config
from .official_parts import OfficialParts, build_official_parts

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


def build_official_model(config_path, checkpoint_path, trust_pickle: bool = False) -> OfficialParts:
    """The official parts of a config file with a checkpoint's weights, for inference (eval mode, no gradients);
    ``problems`` lists what did not map or fit."""
    config = load_official_config(config_path)
    parts = build_official_parts(config, load_official_checkpoint(checkpoint_path, trust_pickle=trust_pickle))
    for module in (parts.unet, parts.vae, parts.labeller):
        module.eval().requires_grad_(False)
    return parts


def _case_names(vectors: dict[str, torch.Tensor]) -> list[str]:
    return sorted({k.split(".", 1)[0] for k in vectors if k.endswith(".image")})


@torch.no_grad()
def compute_case(model: OfficialParts, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
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


def verify_vectors(config_path, checkpoint_path, vectors_path, trust_pickle: bool = False, device="cpu"):
    """Returns (comparisons, problems); problems are structural (unmapped or misfit tensors, missing outputs).
    ``device``: where the model computes (the comparison is on the CPU, in float64)."""
    model = build_official_model(config_path, checkpoint_path, trust_pickle)
    for module in (model.unet, model.vae, model.labeller):
        module.to(device)
    vectors = load_file(str(vectors_path))
    comparisons, problems = [], list(model.problems)
    for case in _case_names(vectors):
        inputs = {name: vectors[f"{case}.{name}"].to(device) for name in INPUT_NAMES}
        ours = {name: value.cpu() for name, value in compute_case(model, inputs).items()}
        for key in sorted(k for k in vectors if k.startswith(case + ".")):
            name = key[len(case) + 1 :]
            if name in INPUT_NAMES:
                continue
            comparisons.append(Comparison(key, relative_error(ours.get(name), vectors[key]), tuple(vectors[key].shape)))
    if not comparisons:
        problems.append(f"{vectors_path}: no cases found (expected keys like 'a.image')")
    return comparisons, problems


def verify_manifest(manifest_path, config_path=None) -> list[str]:
    """Problems found when mapping every tensor of an official manifest (names and shapes) onto our full-size
    components: the checks ``convert`` makes, on the meta device."""
    tensors = json.loads(Path(manifest_path).read_text())["tensors"]
    state = {k: torch.empty(shape, device="meta") for k, shape in tensors.items()}
    parts = build_official_parts(load_official_config(config_path), state, empty=True)
    problems = list(parts.problems)
    mapped = len(parts.converted.unet) + len(parts.converted.vae) + len(parts.converted.labeller)
    if not problems and mapped < len(tensors):
        problems.append(f"only {mapped} of {len(tensors)} tensors were mapped")
    return problems
