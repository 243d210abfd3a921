"""Convert an official PrimeDepth checkpoint into a folder that ``PrimeDepthPipeline.from_pretrained`` loads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import CLIPTextConfig, CLIPTextModel

from ..constants import SD_LATENT_SCALE
from ..models.frozen.stable_diffusion import build_unet, build_vae, unet_config_from_official, vae_config_from_official
from ..models.frozen.text_encoder import DEFAULT_TEXT_ENCODER, load_clip_tokenizer
from ..models.trained.labeller import PrimeDepthLabeller
from ..pipelines.loading import MODEL_INDEX
from ..utils.atomic import atomic_dir
from ..utils.hub import cache_only
from .config_inference import infer_official_config
from .official_checkpoint import fit_key_prefix, load_official_checkpoint, split_official_state_dict
from .official_config import labeller_kwargs_from_official, load_official_config, noise_kwargs_from_official

VAE_DECODER_PREFIXES = ("decoder.", "post_quant_conv.")


@dataclass
class ConversionReport:
    out_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


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


def _load_strict(name: str, module: torch.nn.Module, weights: dict, optional_prefixes=()) -> list[str]:
    """Load ``weights`` into ``module``; returns every wrong-shaped, unexpected or missing tensor (nothing is loaded
    when a shape is wrong)."""
    expected = module.state_dict()
    wrong = [
        f"{name}: tensor {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
        for k, v in weights.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:
        return wrong
    result = module.load_state_dict(weights, strict=False)
    problems = [f"{name}: unexpected tensor {k}" for k in result.unexpected_keys]
    problems += [f"{name}: no tensor for {k}" for k in result.missing_keys if not k.startswith(optional_prefixes)]
    return problems


def convert_official_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    config_path: str | Path | None = None,
    trust_pickle: bool = False,
    text_encoder: str = DEFAULT_TEXT_ENCODER,
    tokenizer: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
    source: str | None = None,
) -> ConversionReport:
    """Write vae/, unet/, labeller/, text_encoder/ + tokenizer/ (when obtainable) and model_index.json.

    The configuration is read from ``config_path`` (official-style JSON) or, without one, inferred from the
    checkpoint's tensor shapes. ``source`` is recorded as where the checkpoint came from (default: its file name).

    The text tower comes from the checkpoint when it holds one (``cond_stage_model.model.*``), otherwise from
    ``text_encoder`` (hub id or folder); the tokenizer from ``tokenizer`` (default: ``text_encoder``). When they
    cannot be fetched now, model_index.json names them and ``from_pretrained`` fetches them later.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MODEL_INDEX).is_file():
        raise FileExistsError(f"{out_dir}: exists and is not a PrimeDepth model folder; choose an empty or new folder")
    state = load_official_checkpoint(checkpoint, trust_pickle=trust_pickle)
    config = (
        load_official_config(config_path)
        if config_path is not None
        else infer_official_config({k: v.shape for k, v in state.items() if hasattr(v, "shape")})
    )
    context_width = config["unet"]["context_dim"]
    scale = config.get("scale_factor", SD_LATENT_SCALE)
    converted = split_official_state_dict(
        state,
        unet_config_from_official(config["unet"]),
        vae_config_from_official(config["vae_ddconfig"], scale),
        len(config["vae_ddconfig"]["ch_mult"]),
    )
    unet, vae = build_unet(config["unet"]), build_vae(config["vae_ddconfig"], scale)
    labeller = PrimeDepthLabeller(**labeller_kwargs_from_official(config))
    problems = list(converted.unplaced)
    problems += _load_strict("unet", unet, converted.unet)
    problems += _load_strict("vae", vae, converted.vae, VAE_DECODER_PREFIXES)
    problems += _load_strict("labeller", labeller, converted.labeller)
    if problems:
        raise ValueError(
            f"{checkpoint}: does not match the config ({len(problems)} problems):\n  " + "\n  ".join(problems[:20])
        )
    report = ConversionReport(
        out_dir, {"unet": len(converted.unet), "vae": len(converted.vae), "labeller": len(converted.labeller)}
    )
    if config_path is None:
        report.notes.append(
            "configuration inferred from the tensor shapes (UNet {model_channels} channels x "
            "{channel_mult}, {num_head_channels}-wide heads, context {context_dim})".format(**config["unet"])
        )
    if not any(k.startswith("decoder.") for k in converted.vae):
        report.notes.append(
            "the checkpoint has no VAE decoder (PrimeDepth never uses it); it is left at its initialisation"
        )

    with atomic_dir(out_dir) as tmp:  # a normal folder (umask respected), renamed into place when complete
        unet.save_pretrained(tmp / "unet")
        vae.save_pretrained(tmp / "vae")
        labeller.save_pretrained(tmp / "labeller")
        settings = {
            "_class_name": "PrimeDepthPipeline",
            **noise_kwargs_from_official(config),
            "default_caption": "auto",
            "source_checkpoint": source or Path(checkpoint).name,
        }
        hub = dict(cache_dir=cache_dir, local_files_only=cache_only(local_files_only))
        if converted.text_encoder is not None:
            text_config = text_config_from_weights(converted.text_encoder)
            check_text_width(f"the text tower in {checkpoint}", text_config.hidden_size, context_width)
            text_model = CLIPTextModel(text_config)
            problems = _load_strict(
                "text_encoder",
                text_model,
                fit_key_prefix(converted.text_encoder, text_model),
                ("text_model.embeddings.position_ids", "embeddings.position_ids"),
            )
            if problems:
                raise ValueError(f"{checkpoint}: text tower does not convert: {problems[:5]}")
            text_model.save_pretrained(tmp / "text_encoder")
            settings["text_encoder"] = "text_encoder"
            report.counts["text_encoder"] = len(converted.text_encoder)
        else:
            try:
                text_config = CLIPTextConfig.from_pretrained(text_encoder, **hub)
                check_text_width(f"text encoder {text_encoder!r}", text_config.hidden_size, context_width)
                CLIPTextModel.from_pretrained(text_encoder, **hub).save_pretrained(tmp / "text_encoder")
                settings["text_encoder"] = "text_encoder"
            except OSError:
                settings["text_encoder"] = text_encoder
                report.notes.append(
                    f"text encoder {text_encoder!r} not available now; it will be loaded from "
                    "there when the model is first used"
                )
        tokenizer_source = tokenizer or text_encoder
        try:
            load_clip_tokenizer(tokenizer_source, **hub).save_pretrained(tmp / "tokenizer")
            settings["tokenizer"] = "tokenizer"
        except OSError:
            settings["tokenizer"] = tokenizer_source
            report.notes.append(
                f"tokenizer {tokenizer_source!r} not available now; it will be loaded from there "
                "when the model is first used"
            )
        (tmp / MODEL_INDEX).write_text(json.dumps(settings, indent=2))
    return report
