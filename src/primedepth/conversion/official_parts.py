"""The parts of an official PrimeDepth model, built from its official-style config, with an official state dict
mapped onto them and checked tensor by tensor.

``convert`` saves these parts, ``verify_vectors`` runs them against the reference intermediates and
``verify_manifest`` checks the names and shapes of a full checkpoint against them on the meta device. All three use
this one builder, so they build the same modules, map keys the same way and find the same problems: a manifest
that passes is a checkpoint that converts.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from ..models.frozen.stable_diffusion import build_unet, build_vae, unet_config_from_official, vae_config_from_official
from ..models.trained.labeller import PrimeDepthLabeller
from .official_checkpoint import ConvertedCheckpoint, fit_key_prefix, split_official_state_dict
from .official_config import labeller_kwargs_from_official, latent_scale_from_official, noise_kwargs_from_official

# Tensors a checkpoint may lack: PrimeDepth never decodes latents, and transformers rebuilds its position ids.
VAE_DECODER_PREFIXES = ("decoder.", "post_quant_conv.")
TEXT_POSITION_IDS = ("text_model.embeddings.position_ids", "embeddings.position_ids")


def text_config_from_weights(state: dict[str, torch.Tensor]) -> CLIPTextConfig:
    """CLIPTextConfig of a converted OpenCLIP text tower, read off its tensor shapes (64-wide heads, like
    OpenCLIP's ``head_width``)."""
    vocab, width = state["embeddings.token_embedding.weight"].shape
    layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layers.")})
    return CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=max(1, width // 64),
        intermediate_size=state["encoder.layers.0.mlp.fc1.weight"].shape[0],
        max_position_embeddings=state["embeddings.position_embedding.weight"].shape[0],
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=0,
    )


def check_text_width(what: str, width: int, context_width: int) -> None:
    """The UNet cross-attends to the text tower's token states, so their widths must agree."""
    if width != context_width:
        raise ValueError(
            f"{what} is {width} wide, but the UNet's cross-attention expects {context_width}-wide text "
            "states (context_dim); pass a text tower of that width (--text-encoder)"
        )


def place_weights(name: str, module: torch.nn.Module, weights: dict, optional_prefixes=(), load: bool = True):
    """Every unexpected, wrong-shaped or missing tensor of ``weights`` for ``module`` (missing ones under
    ``optional_prefixes`` excepted), and, when ``load``, the tensors that fit loaded into the module."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    problems = []
    for key, value in weights.items():
        if key not in expected:
            problems.append(f"{name}: unexpected tensor {key}")
        elif tuple(value.shape) != expected[key]:
            problems.append(f"{name}: tensor {key} has shape {tuple(value.shape)}, expected {expected[key]}")
    problems += [
        f"{name}: no tensor for {k}" for k in expected if k not in weights and not k.startswith(optional_prefixes)
    ]
    if load:
        module.load_state_dict(
            {k: v for k, v in weights.items() if expected.get(k) == tuple(v.shape)},
            strict=False,
        )
    return problems


def split_official(config: dict, state: dict[str, torch.Tensor]) -> ConvertedCheckpoint:
    """An official state dict split into our components' state dicts, for the components of ``config``."""
    return split_official_state_dict(
        state,
        unet_config_from_official(config["unet"]),
        vae_config_from_official(config["vae_ddconfig"], latent_scale_from_official(config)),
        len(config["vae_ddconfig"]["ch_mult"]),
    )


@dataclass
class OfficialParts:
    """The modules of an official config, its noise settings and, when a state dict was given, its mapping."""

    config: dict
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    labeller: PrimeDepthLabeller
    noise: dict
    converted: ConvertedCheckpoint | None = None
    text_encoder: CLIPTextModel | None = None
    problems: list[str] = field(default_factory=list)  # unplaced keys and every misfit tensor


def build_official_parts(
    config: dict,
    state: dict[str, torch.Tensor] | None = None,
    *,
    empty: bool = False,
    text_encoder: bool = False,
    origin: str = "the checkpoint",
) -> OfficialParts:
    """UNet, VAE and labeller of ``config``; with ``state`` (an official state dict) its tensors mapped, checked
    and loaded into them, and with ``text_encoder`` also the checkpoint's own text tower when it holds one
    (``origin`` names the checkpoint in the width error). ``empty`` builds on the meta device and only checks
    names and shapes (a full-size model without its memory)."""
    converted = split_official(config, state) if state is not None else None
    with init_empty_weights() if empty else nullcontext():
        unet = build_unet(config["unet"])
        vae = build_vae(config["vae_ddconfig"], latent_scale_from_official(config))
        labeller = PrimeDepthLabeller(**labeller_kwargs_from_official(config))
    parts = OfficialParts(config, unet, vae, labeller, noise_kwargs_from_official(config), converted)
    if converted is None:
        return parts
    parts.problems = list(converted.unplaced)
    for name, module, weights, optional in (
        ("unet", unet, converted.unet, ()),
        ("vae", vae, converted.vae, VAE_DECODER_PREFIXES),
        ("labeller", labeller, converted.labeller, ()),
    ):
        parts.problems += place_weights(name, module, weights, optional, load=not empty)
    if text_encoder and converted.text_encoder is not None:
        text_config = text_config_from_weights(converted.text_encoder)
        check_text_width(f"the text tower in {origin}", text_config.hidden_size, config["unet"]["context_dim"])
        parts.text_encoder = CLIPTextModel(text_config)
        weights = fit_key_prefix(converted.text_encoder, parts.text_encoder)
        parts.problems += place_weights("text_encoder", parts.text_encoder, weights, TEXT_POSITION_IDS)
    return parts
