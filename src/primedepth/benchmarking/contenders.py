"""The contenders of ``primedepth bench``: each one built with random weights of its real architecture (or tiny
ones), as a ``Runner`` that predicts one batch; the default selections per device."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import DDIMScheduler, MarigoldDepthPipeline
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    DepthAnythingConfig,
    DepthAnythingForDepthEstimation,
    Dinov2Config,
)

from ..constants import SD_NOISE_SCHEDULE
from ..conversion.official_config import FULL_OFFICIAL_CONFIG, labeller_kwargs_from_official, noise_kwargs_from_official
from ..export.onnx import export_onnx, onnx_session, run_onnx
from ..models.frozen.stable_diffusion import build_unet, build_vae
from ..models.frozen.text_encoder import CONTEXT_LENGTH, byte_level_tokenizer
from ..models.trained.labeller import PrimeDepthLabeller
from ..pipelines.pipeline import PrimeDepthPipeline
from ..pipelines.tiny_random import TINY_OFFICIAL_CONFIG

RESOLUTIONS = (256, 384, 512, 768, 1024)
CPU_DEFAULT_RESOLUTIONS = (256, 512)
MARIGOLD_PROTOCOL = (50, 10)  # v1-0: DDIM steps, ensemble size


_SIZES = "hidden_size num_hidden_layers num_attention_heads stages neck_hidden_sizes fusion_hidden_size".split()


def _depth_anything(*sizes) -> dict:
    """The ``DepthAnythingConfig`` values that tell the sizes apart, in the order of ``_SIZES``."""
    return dict(zip(_SIZES, sizes, strict=True))


# Depth Anything V2 S/B/L, as in the released ``depth-anything/Depth-Anything-V2-*-hf`` configs.
DEPTH_ANYTHING_V2 = {
    "S": _depth_anything(384, 12, 6, (3, 6, 9, 12), (48, 96, 192, 384), 64),
    "B": _depth_anything(768, 12, 12, (3, 6, 9, 12), (96, 192, 384, 768), 128),
    "L": _depth_anything(1024, 24, 16, (5, 12, 18, 24), (256, 512, 1024, 1024), 256),
}
TINY_DEPTH_ANYTHING = _depth_anything(32, 4, 2, (1, 2, 3, 4), (8, 16, 32, 32), 16)


@dataclass
class Runner:
    """A built contender: ``run(images)`` predicts one batch; ``modules`` hold the resident weights."""

    run: Callable[[torch.Tensor], object]
    modules: list[torch.nn.Module]
    input_size: Callable[[int], int] = lambda res: res
    value_range: tuple[float, float] = (-1.0, 1.0)
    weights_bytes: int | None = None  # when the weights are not torch modules (onnxruntime)


@dataclass
class Contender:
    name: str
    label: str
    build: Callable[..., Runner]
    notes: str = ""
    options: dict = field(default_factory=dict)


def _official_config(scale: str) -> dict:
    if scale == "full":
        return FULL_OFFICIAL_CONFIG
    if scale == "tiny":
        return TINY_OFFICIAL_CONFIG
    raise ValueError(f"scale must be 'full' or 'tiny', got {scale!r}")


def stub_text_encoder(context_dim: int):
    """A one-layer text tower of the right width (the benchmarks reuse one precomputed prompt embedding)."""
    tokenizer = byte_level_tokenizer()
    tokenizer.model_max_length = CONTEXT_LENGTH
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=context_dim,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=max(1, context_dim // 64),
        max_position_embeddings=CONTEXT_LENGTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=0,
    )
    return CLIPTextModel(config).eval(), tokenizer


def _sd_parts(scale: str, unet_in_channels: int = 4):
    config = _official_config(scale)
    unet = build_unet({**config["unet"], "in_channels": unet_in_channels}).eval().requires_grad_(False)
    vae = build_vae(config["vae_ddconfig"], config["scale_factor"]).eval().requires_grad_(False)
    return config, unet, vae


def random_pipeline(scale: str, device: torch.device):
    """A ``PrimeDepthPipeline`` with random weights of the real (or tiny) architecture and a stub text tower."""
    config, unet, vae = _sd_parts(scale)
    labeller = PrimeDepthLabeller(**labeller_kwargs_from_official(config))
    text_encoder, tokenizer = stub_text_encoder(config["unet"]["context_dim"])
    pipe = PrimeDepthPipeline(
        vae, unet, text_encoder, tokenizer, labeller, {**noise_kwargs_from_official(config), "default_caption": "none"}
    )
    return pipe.to(device=device)


def build_primedepth(
    scale: str,
    device: torch.device,
    *,
    attention: str = "pooled",
    segmentation: bool = False,
    frozen_dtype: torch.dtype = torch.float32,
    labeller_dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
    low_memory: bool = False,
    compile: bool = False,
    keep_vae_decoder: bool = True,
    precision: str | None = None,
) -> Runner:
    """PrimeDepth at the given precision split / attention mode (``attention="naive"`` + segmentation + fp32 is the
    authors' arithmetic). ``precision``: a named configuration (``"auto"`` included) instead of the two dtypes."""
    pipe = random_pipeline(scale, device)
    config = _official_config(scale)
    pipe.optimize(
        frozen_dtype=frozen_dtype,
        labeller_dtype=labeller_dtype,
        channels_last=channels_last,
        compile=compile,
        drop_vae_decoder=not keep_vae_decoder,
    )
    if precision is not None:
        pipe.set_precision(precision)
    context = torch.zeros(1, 77, config["unet"]["context_dim"], device=device)

    def run(images):
        return pipe.predict_tensor(
            images,
            context.expand(images.shape[0], -1, -1),
            generator=None,
            segmentation=segmentation,
            attention=attention,
            low_memory=low_memory,
        )

    return Runner(run, [pipe.vae, pipe.unet, pipe.labeller])


def build_primedepth_onnx(scale: str, device: torch.device, *, threads: int | None = None) -> Runner:
    """PrimeDepth's single step exported to ONNX (fp32, ``primedepth export onnx``) and run by onnxruntime on the
    CPU; the export (into a temporary folder) is part of the build, not of the timed runs."""
    if device.type != "cpu":
        raise ValueError("the primedepth-onnx contender runs onnxruntime's CPU provider only")
    folder = tempfile.TemporaryDirectory(prefix="primedepth-onnx-")
    path = Path(folder.name) / "primedepth.onnx"
    export_onnx(random_pipeline(scale, device), path)
    session = onnx_session(path, threads=threads or torch.get_num_threads())
    weights = sum(f.stat().st_size for f in Path(folder.name).iterdir())

    def run(images):
        run.folder = folder  # the exported files live as long as the runner
        return run_onnx(session, images)

    return Runner(run, [], weights_bytes=weights)


def _channels_last(*modules):
    for module in modules:
        torch.nn.Module.to(module, memory_format=torch.channels_last)


def build_sd_single_step(scale: str, device: torch.device, *, channels_last: bool = True) -> Runner:
    """VAE encode (posterior mean) + one UNet call + VAE decode: the E2E-FT / Marigold v1-1 single-step shape.
    channels_last like ours by default ("same settings")."""
    config, unet, vae = _sd_parts(scale)
    unet.to(device)
    vae.to(device)
    if channels_last:
        _channels_last(unet, vae)
    context = torch.zeros(1, 77, config["unet"]["context_dim"], device=device)
    scale_factor = config["scale_factor"]
    t = torch.tensor([999], device=device)

    @torch.no_grad()
    def run(images):
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        moments = vae.quant_conv(vae.encoder(images))
        latent = moments.chunk(2, dim=1)[0] * scale_factor
        pred = unet(latent, t, encoder_hidden_states=context.expand(images.shape[0], -1, -1), return_dict=False)[0]
        return vae.decoder(vae.post_quant_conv(pred / scale_factor))

    return Runner(run, [unet, vae])


def build_marigold(
    scale: str, device: torch.device, *, steps: int = 1, ensemble: int = 1, channels_last: bool = True
) -> Runner:
    """diffusers' ``MarigoldDepthPipeline`` around random SD 2 components (UNet with 8 input channels); UNet and VAE
    in channels_last by default (as fast as we make ours)."""
    config, unet, vae = _sd_parts(scale, unet_in_channels=8)
    text_encoder, tokenizer = stub_text_encoder(config["unet"]["context_dim"])
    scheduler = DDIMScheduler(
        **SD_NOISE_SCHEDULE,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="v_prediction",
        timestep_spacing="leading",
    )
    pipe = MarigoldDepthPipeline(
        unet=unet,
        vae=vae,
        scheduler=scheduler,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        prediction_type="depth",
        scale_invariant=True,
        shift_invariant=True,
        default_denoising_steps=steps,
        default_processing_resolution=768,
    ).to(device)
    pipe.set_progress_bar_config(disable=True)
    if channels_last:
        _channels_last(unet, vae)

    def run(images):
        return pipe(
            images,
            num_inference_steps=steps,
            ensemble_size=ensemble,
            processing_resolution=max(images.shape[-2:]),
            match_input_resolution=True,
            batch_size=1,
            generator=torch.Generator(device=device).manual_seed(0),
            output_type="pt",
        )

    return Runner(run, [unet, vae], value_range=(0.0, 1.0))


def depth_anything_config(variant: str | dict):
    spec = DEPTH_ANYTHING_V2[variant] if isinstance(variant, str) else variant
    backbone = Dinov2Config(
        hidden_size=spec["hidden_size"],
        num_hidden_layers=spec["num_hidden_layers"],
        num_attention_heads=spec["num_attention_heads"],
        mlp_ratio=4,
        patch_size=14,
        image_size=518,
        layerscale_value=1.0,
        reshape_hidden_states=False,
        out_features=[f"stage{s}" for s in spec["stages"]],
    )
    return DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=14,
        reassemble_hidden_size=spec["hidden_size"],
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=list(spec["neck_hidden_sizes"]),
        fusion_hidden_size=spec["fusion_hidden_size"],
        head_in_index=-1,
        head_hidden_size=32,
        depth_estimation_type="relative",
    )


def build_depth_anything(scale: str, device: torch.device, *, variant: str = "S") -> Runner:
    """transformers' ``DepthAnythingForDepthEstimation``; inputs are resized to the next multiple of 14."""
    model = DepthAnythingForDepthEstimation(depth_anything_config(variant if scale == "full" else TINY_DEPTH_ANYTHING))
    model.eval().requires_grad_(False).to(device)

    @torch.no_grad()
    def run(images):
        return model(pixel_values=images).predicted_depth

    return Runner(run, [model], input_size=lambda res: 14 * math.ceil(res / 14))


def contenders() -> dict[str, Contender]:
    """Every contender by name. ``primedepth`` is the fastest correct configuration (``fastest_primedepth``)."""
    bf16 = torch.bfloat16
    items = [
        Contender(
            "primedepth",
            "PrimeDepth (ours, fp32)",
            build_primedepth,
            "pooled fused attention, no segmentation head, channels_last, fp32",
        ),
        Contender(
            "primedepth-auto",
            "PrimeDepth (ours, --dtype auto)",
            build_primedepth,
            "the configuration `--dtype auto` picks on this device, channels_last",
            dict(precision="auto", channels_last=True),
        ),
        Contender(
            "primedepth-tf32",
            "PrimeDepth (ours, --dtype tf32)",
            build_primedepth,
            "fp32 weights, TF32 matmuls and convolutions on CUDA (fp32 elsewhere), channels_last",
            dict(precision="tf32", channels_last=True),
        ),
        Contender(
            "primedepth-onnx",
            "PrimeDepth exported to ONNX, onnxruntime",
            build_primedepth_onnx,
            "`primedepth export onnx` fp32, onnxruntime CPU provider, same thread count",
        ),
        Contender(
            "primedepth-authors",
            "PrimeDepth, authors' arithmetic",
            build_primedepth,
            "N x N maps + stretch/pool/resize, segmentation head on, fp32",
            dict(attention="naive", segmentation=True),
        ),
        Contender(
            "primedepth-plain",
            "PrimeDepth, pooled, fp32, no other optimisation",
            build_primedepth,
            "before the memory-format / precision switches",
        ),
        Contender(
            "primedepth-bf16",
            "PrimeDepth, bf16 UNet+VAE, fp32 labeller",
            build_primedepth,
            "mixed precision",
            dict(frozen_dtype=bf16, channels_last=True),
        ),
        Contender(
            "primedepth-bf16-all",
            "PrimeDepth, everything bf16",
            build_primedepth,
            "bf16 everywhere (GroupNorms fp32)",
            dict(frozen_dtype=bf16, labeller_dtype=bf16, channels_last=True),
        ),
        Contender(
            "primedepth-fp16",
            "PrimeDepth, fp16 UNet+VAE, fp32 labeller",
            build_primedepth,
            "mixed precision",
            dict(frozen_dtype=torch.float16, channels_last=True),
        ),
        Contender(
            "primedepth-fp16-all",
            "PrimeDepth, everything fp16",
            build_primedepth,
            "fp16 everywhere (GroupNorms fp32)",
            dict(frozen_dtype=torch.float16, labeller_dtype=torch.float16, channels_last=True),
        ),
        Contender(
            "primedepth-lowmem",
            "PrimeDepth, memory-saving switch",
            build_primedepth,
            "low_memory=True, VAE decoder dropped",
            dict(low_memory=True, keep_vae_decoder=False, channels_last=True),
        ),
        Contender(
            "sd-single-step",
            "Single-step SD depth (VAE enc + UNet + VAE dec)",
            build_sd_single_step,
            "E2E-FT / Marigold v1-1 shape, fp32, channels_last",
        ),
        Contender(
            "sd-single-step-nchw",
            "Single-step SD depth, NCHW",
            build_sd_single_step,
            "fp32, default memory format",
            dict(channels_last=False),
        ),
        Contender(
            "marigold-1x1",
            "Marigold, 1 step x 1",
            build_marigold,
            "diffusers MarigoldDepthPipeline, channels_last",
            dict(steps=1, ensemble=1),
        ),
        Contender(
            "marigold-2x1",
            "Marigold, 2 steps x 1",
            build_marigold,
            "for the linear extrapolation",
            dict(steps=2, ensemble=1),
        ),
        Contender(
            "marigold-50x10",
            "Marigold, 50 steps x 10 (v1-0), measured",
            build_marigold,
            "run directly (GPU)",
            dict(steps=50, ensemble=10),
        ),
    ]
    for v in DEPTH_ANYTHING_V2:
        items.append(
            Contender(
                f"depth-anything-v2-{v.lower()}",
                f"Depth Anything V2-{v}",
                build_depth_anything,
                "transformers, input resized to a multiple of 14",
                dict(variant=v),
            )
        )
    return {c.name: c for c in items}


def fastest_primedepth_options(device: torch.device) -> dict:
    """Options of ``primedepth`` (ours in fp32) per device (measured, see docs/performance.md): fp32 +
    channels_last. Half precision is the ``primedepth-auto`` row (what ``--dtype auto`` picks, judged on trained
    weights) and the ``primedepth-bf16*`` / ``primedepth-fp16*`` rows."""
    return dict(channels_last=True)


CPU_DEFAULT_CONTENDERS = (
    "primedepth",
    "primedepth-auto",
    "primedepth-onnx",
    "primedepth-authors",
    "sd-single-step",
    "marigold-1x1",
    "marigold-2x1",
    "depth-anything-v2-s",
    "depth-anything-v2-b",
    "depth-anything-v2-l",
)
CUDA_DEFAULT_CONTENDERS = tuple(c for c in CPU_DEFAULT_CONTENDERS if c != "primedepth-onnx") + ("marigold-50x10",)


def default_contenders(device: torch.device) -> tuple[str, ...]:
    return CUDA_DEFAULT_CONTENDERS if device.type == "cuda" else CPU_DEFAULT_CONTENDERS
