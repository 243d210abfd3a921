"""Official PrimeDepth checkpoint (Lightning pickle, ldm key names) -> our components' state dicts.

Prefixes: ``model.diffusion_model.`` (frozen UNet), ``first_stage_model.`` (VAE), ``cond_stage_model.model.``
(OpenCLIP text tower), ``labeller.`` (fusion, refiner, heads). UNet and VAE keys go through diffusers' own
single-file converters; the labeller and the text tower are mapped here. ``split_official_state_dict`` reports
every key it could not place, so a converter can prove that nothing was dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..utils.torch_files import UntrustedCheckpointError, load_torch_file  # noqa: F401 (raised by the loader)

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.model."
LABELLER_PREFIX = "labeller."
# Buffers of the diffusion wrapper (noise schedule, EMA bookkeeping) that carry no weights.
IGNORED_PREFIXES = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_",
    "logvar",
    "scale_factor",
    "model_ema.",
    "cond_stage_model.model.visual.",
    "cond_stage_model.model.logit_scale",
)


def load_official_checkpoint(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The flat state dict of a ``.ckpt``/``.pt`` (``weights_only`` unless trusted) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except SafetensorError as err:
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    obj = load_torch_file(path, trust_pickle=trust_pickle)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: no state_dict found in the checkpoint")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        more = f" (and {len(not_tensors) - 1} more)" if len(not_tensors) > 1 else ""
        raise ValueError(
            f"{path}: state_dict entry {not_tensors[0]!r} is a {type(state[not_tensors[0]]).__name__}, "
            f"not a tensor{more}"
        )
    return state


# ---------------------------------------------------------------- labeller


_RESBLOCK = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "skip",
}
_TRANSFORMER = {
    "attn1.to_out.0": "attn1.to_out",
    "attn2.to_out.0": "attn2.to_out",
    "ff.net.0.proj": "ff.proj_in",
    "ff.net.2": "ff.proj_out",
}
_HEAD_RESNET = {"nin_shortcut": "skip"}


def _sub(table: dict[str, str], name: str) -> str:
    for old, new in table.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return name


_FUSION_CONVS = {"features": "feature_convs", "attentions": "attention_convs", "merge": "merge_convs"}
_REFINER_OUT = {"0": "refiner_norm_out", "2": "refiner_conv_out"}
_HEADS = {"depth": "depth_head", "label": "segmentation_head"}
_HEAD = r"(depth|label)_predictor\."

# (official key pattern, our name from its match and the heads' level count); the first pattern that matches wins.
# The heads number their up levels the other way round.
_LABELLER_KEYS = (
    (r"convs_(features|attentions|merge)\.(\d+)\.(weight|bias)", lambda m, _: f"{_FUSION_CONVS[m[1]]}.{m[2]}.{m[3]}"),
    (r"refiner\.output_blocks\.(\d+)\.0\.(.+)", lambda m, _: f"refiner.{m[1]}.resnet.{_sub(_RESBLOCK, m[2])}"),
    (r"refiner\.output_blocks\.(\d+)\.\d+\.conv\.(weight|bias)", lambda m, _: f"refiner.{m[1]}.upsample.conv.{m[2]}"),
    (
        r"refiner\.output_blocks\.(\d+)\.1\.transformer_blocks\.0\.(.+)",
        lambda m, _: f"refiner.{m[1]}.attention.block.{_sub(_TRANSFORMER, m[2])}",
    ),
    (
        r"refiner\.output_blocks\.(\d+)\.1\.((norm|proj_in|proj_out)\.(weight|bias))",
        lambda m, _: f"refiner.{m[1]}.attention.{m[2]}",
    ),
    (r"refiner\.out\.(0|2)\.(weight|bias)", lambda m, _: f"{_REFINER_OUT[m[1]]}.{m[2]}"),
    (_HEAD + r"mid\.block_(1|2)\.(.+)", lambda m, _: f"{_HEADS[m[1]]}.mid_block_{m[2]}.{_sub(_HEAD_RESNET, m[3])}"),
    (_HEAD + r"mid\.attn_1\.(.+)", lambda m, _: f"{_HEADS[m[1]]}.mid_attn.{m[2]}"),
    (
        _HEAD + r"up\.(\d+)\.block\.(\d+)\.(.+)",
        lambda m, levels: f"{_HEADS[m[1]]}.up.{levels - 1 - int(m[2])}.blocks.{m[3]}.{_sub(_HEAD_RESNET, m[4])}",
    ),
    (
        _HEAD + r"up\.(\d+)\.upsample\.conv\.(weight|bias)",
        lambda m, levels: f"{_HEADS[m[1]]}.up.{levels - 1 - int(m[2])}.upsample.conv.{m[3]}",
    ),
    (_HEAD + r"((conv_in|norm_out|conv_out)\.(weight|bias))", lambda m, _: f"{_HEADS[m[1]]}.{m[2]}"),
)


def labeller_key(key: str, head_levels: int) -> str | None:
    """Our ``PrimeDepthLabeller`` name for an official ``labeller.*`` key (without the prefix), or None."""
    for pattern, name in _LABELLER_KEYS:
        if m := re.fullmatch(pattern, key):
            return name(m, head_levels)
    return None


# ---------------------------------------------------------------- text tower


_TEXT_LAYER = {
    "attn.out_proj": "self_attn.out_proj",
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


def text_tower_to_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenCLIP text tower (keys without ``cond_stage_model.model.``) -> ``CLIPTextModel`` keys of its
    ``text_model`` (transformers 5 names them without that prefix; ``fit_key_prefix`` adapts to either)."""
    out = {}
    for key, value in state.items():
        if key == "token_embedding.weight":
            out["embeddings.token_embedding.weight"] = value
        elif key == "positional_embedding":
            out["embeddings.position_embedding.weight"] = value
        elif key.startswith("ln_final."):
            out["final_layer_norm." + key.split(".", 1)[1]] = value
        elif key == "text_projection":
            continue  # pooled projection; PrimeDepth conditions on the token states only
        elif m := re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)", key):
            layer, rest = f"encoder.layers.{m[1]}.", m[2]
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                kind = rest.rsplit("_", 1)[1]
                for name, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    out[f"{layer}self_attn.{name}.{kind}"] = chunk
            else:
                out[layer + _sub(_TEXT_LAYER, rest)] = value
        else:
            raise KeyError(f"unexpected OpenCLIP text tower key {key!r}")
    return out


# ---------------------------------------------------------------- split


@dataclass
class ConvertedCheckpoint:
    unet: dict[str, torch.Tensor]
    vae: dict[str, torch.Tensor]
    labeller: dict[str, torch.Tensor]
    text_encoder: dict[str, torch.Tensor] | None
    unplaced: list[str] = field(default_factory=list)  # official keys that found no home


def split_official_state_dict(
    state: dict[str, torch.Tensor], unet_config: dict, vae_config: dict, head_levels: int
) -> ConvertedCheckpoint:
    unet_keys = {k: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    vae_keys = {k: v for k, v in state.items() if k.startswith(VAE_PREFIX)}
    unet = convert_ldm_unet_checkpoint(unet_keys, unet_config) if unet_keys else {}
    vae = convert_ldm_vae_checkpoint(vae_keys, vae_config) if vae_keys else {}
    labeller, text, unplaced = {}, {}, []
    for key, value in state.items():
        if key.startswith(LABELLER_PREFIX):
            ours = labeller_key(key[len(LABELLER_PREFIX) :], head_levels)
            if ours is None:
                unplaced.append(key)
            else:
                labeller[ours] = value
        elif key.startswith(TEXT_PREFIX) and not key.startswith(IGNORED_PREFIXES):
            text[key[len(TEXT_PREFIX) :]] = value
        elif not key.startswith((UNET_PREFIX, VAE_PREFIX) + IGNORED_PREFIXES) and not key.startswith(TEXT_PREFIX):
            unplaced.append(key)
    # diffusers' converters drop what they do not recognise: count tensors in and out to catch it.
    for name, given, converted in (("UNet", unet_keys, unet), ("VAE", vae_keys, vae)):
        if len(converted) != len(given):
            unplaced.append(f"<{name}: {len(given)} official tensors became {len(converted)} diffusers tensors>")
    return ConvertedCheckpoint(unet, vae, labeller, text_tower_to_transformers(text) if text else None, unplaced)


def fit_key_prefix(state: dict[str, torch.Tensor], module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Add the module's ``text_model.`` prefix when its parameter names carry one (transformers < 5)."""
    if any(k.startswith("text_model.") for k in module.state_dict()):
        return {"text_model." + k: v for k, v in state.items()}
    return state
