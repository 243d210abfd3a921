"""Adapters for depth models released since the paper, each run through its library's own classes: Depth Anything V1
and Depth Pro (transformers), Marigold v1-1, Marigold-LCM and Marigold-format one-step models such as E2E-FT
(diffusers ``MarigoldDepthPipeline``, with the checkpoint's own scheduler and defaults).

Every adapter says what its output is (``output_kind``: depth or inverse depth, both affine-invariant) and so in which
space the protocol aligns it (``space``). Like the other peers they load local folders only; ``PEERS`` maps the
``--model KIND=DIR`` kind to the adapter. Marigold v1-0 (``--model marigold=DIR``) runs through the same Marigold
adapter as the Marigold-format peers.

diffusers and transformers are imported when an adapter is built: each takes seconds to import, and a run uses at
most one of them."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..conversion.model_folder import check_library_folder
from ..pipelines.depth_anything import predict_inverse_depth, upsample
from .predictors import Predictor, _device, _generator, _require_dir


class DepthAnythingV1Predictor(Predictor):
    """Depth Anything (V1, the paper's peer) as transformers ``DepthAnythingForDepthEstimation`` with its DPT image
    processor (e.g. ``LiheYoung/depth-anything-large-hf``). Output: affine-invariant inverse depth (disparity)."""

    name, space, output_kind = "depth-anything", "disparity", "inverse depth"
    title, hub_id = "Depth Anything V1", "LiheYoung/depth-anything-large-hf"

    def __init__(self, path: str | Path, device: str | None = None):
        from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

        path = _require_dir(path, self.title, self.hub_id)
        self.device = _device(device)
        check_library_folder(path)
        self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        self.model = DepthAnythingForDepthEstimation.from_pretrained(path, local_files_only=True).to(self.device).eval()

    def predict(self, sample_id, rgb):
        return predict_inverse_depth(self.processor, self.model, rgb)


class DepthProPredictor(Predictor):
    """Apple's Depth Pro as transformers ``DepthProForDepthEstimation`` (``apple/DepthPro-hf``). Its
    ``predicted_depth`` is the network's canonical inverse depth, before the field-of-view scaling that makes it
    metric; that relative output is used as affine-invariant inverse depth (disparity). The FoV head is not run.

    Input preparation follows ``DepthProImageProcessor`` (rescale to [0, 1], normalise with the saved mean/std, then
    bilinear resize without antialias to the saved size), read from ``preprocessor_config.json``: that processor
    class needs torchvision, which this package does not depend on."""

    name, space, output_kind = "depth-pro", "disparity", "inverse depth"
    title, hub_id = "Depth Pro", "apple/DepthPro-hf"

    def __init__(self, path: str | Path, device: str | None = None):
        from transformers import DepthProForDepthEstimation

        path = _require_dir(path, self.title, self.hub_id)
        self.device = _device(device)
        config_file = path / "preprocessor_config.json"
        self.settings = json.loads(config_file.read_text()) if config_file.is_file() else {}
        check_library_folder(path)
        self.model = DepthProForDepthEstimation.from_pretrained(path, local_files_only=True, use_fov_model=False)
        self.model = self.model.to(self.device).eval()

    def pixel_values(self, rgb: np.ndarray) -> torch.Tensor:
        from ..pipelines.metric import depth_pro_pixel_values

        return depth_pro_pixel_values(rgb, self.settings)

    @torch.no_grad()
    def predict(self, sample_id, rgb):
        out = self.model(pixel_values=self.pixel_values(rgb).to(self.device)).predicted_depth
        return upsample(out, rgb.shape[:2])


@dataclass(frozen=True)
class MarigoldFormat:
    """How one Marigold-format checkpoint is run through ``MarigoldDepthPipeline``: denoising steps, ensemble size
    and processing resolution on datasets outside Marigold's evaluation (None: the checkpoint's
    ``default_denoising_steps`` / ``default_processing_resolution``, with its own scheduler; on Marigold's own
    datasets their configs' ``processing_res`` applies), and whether the initial latent is zero instead of noise
    (end-to-end fine-tuned one-step models are trained that way)."""

    title: str
    hub_id: str
    steps: int | None = None
    ensemble_size: int = 1
    processing_resolution: int | None = None
    zero_noise: bool = False


# Marigold v1-0 as in the paper's protocol (``--model marigold=DIR --marigold-setting v1-0 / 1-step``), then the
# recent Marigold-format peers (``--model KIND=DIR``).
MARIGOLD_V1_0 = ("Marigold", "prs-eth/marigold-depth-v1-0")
MARIGOLD_FORMATS = {
    "marigold-v1-0": MarigoldFormat(*MARIGOLD_V1_0, steps=50, ensemble_size=10, processing_resolution=768),
    "marigold-1-step": MarigoldFormat(*MARIGOLD_V1_0, steps=1, ensemble_size=1, processing_resolution=768),
    "marigold-v1-1": MarigoldFormat("Marigold v1-1", "prs-eth/marigold-depth-v1-1"),
    "marigold-lcm": MarigoldFormat("Marigold-LCM", "prs-eth/marigold-depth-lcm-v1-0"),
    "marigold-e2e-ft": MarigoldFormat(
        "E2E-FT (Marigold format, one step)", "GonzaloMG/marigold-e2e-ft-depth", steps=1, zero_noise=True
    ),
}
MARIGOLD_PEERS = ("marigold-v1-1", "marigold-lcm", "marigold-e2e-ft")


class MarigoldPredictor(Predictor):
    """A Marigold-format depth checkpoint through diffusers ``MarigoldDepthPipeline`` as ``MARIGOLD_FORMATS[kind]``
    says; ``ensemble_size`` / ``processing_resolution`` override the format's. The run is named ``kind``. Output:
    affine-invariant depth, aligned in depth space. On Marigold's own datasets it is given the native RGB and runs
    at the dataset config's ``processing_res`` (unless ``processing_resolution`` is given), as Marigold's evaluation
    does."""

    space, output_kind, resizes_input = "depth", "depth", True

    def __init__(
        self,
        path: str | Path,
        kind: str = "marigold-v1-0",
        device: str | None = None,
        seed: int = 0,
        ensemble_size: int | None = None,
        processing_resolution: int | None = None,
    ):
        from diffusers import MarigoldDepthPipeline

        if kind not in MARIGOLD_FORMATS:
            raise ValueError(f"Marigold-format kind must be one of {sorted(MARIGOLD_FORMATS)}, got {kind!r}")
        overrides = dict(ensemble_size=ensemble_size, processing_resolution=processing_resolution)
        self.format = replace(MARIGOLD_FORMATS[kind], **{k: v for k, v in overrides.items() if v is not None})
        self.fixed_resolution = processing_resolution is not None
        self.resolution = self.format.processing_resolution
        path = _require_dir(path, self.format.title, self.format.hub_id)
        self.name, self.seed, self.device = kind, seed, _device(device)
        check_library_folder(path)
        self.pipe = MarigoldDepthPipeline.from_pretrained(path, local_files_only=True).to(self.device)
        self.pipe.set_progress_bar_config(disable=True)

    def prepare(self, config) -> None:
        if not self.fixed_resolution:
            # Marigold's evaluation scripts (prs-eth/Marigold ``script/depth/eval/*_infer_*.sh``, also Marigold-LCM's
            # and E2E-FT's) run at the dataset config's processing_res (native when none), given the full-resolution
            # RGB and upsampled back to it by the pipeline
            marigold = config.processing_res or 0
            self.resolution = marigold if config.marigold_benchmark else self.format.processing_resolution

    def input_note(self, config) -> str:
        resolution = self.resolution if self.resolution is not None else self.pipe.default_processing_resolution
        at = "native resolution" if resolution == 0 else f"long side {resolution} px"
        return f"native RGB; Marigold processing_resolution={resolution} ({at}), output upsampled to the input size"

    def zero_latents(self, shape: tuple[int, int]) -> torch.Tensor:
        """Zero initial latents of the shape the pipeline expects for an image of ``shape`` (its own size rule)."""
        h, w = shape
        resolution = self.resolution
        if resolution is None:
            resolution = self.pipe.default_processing_resolution
        if resolution:
            h, w = h * resolution // max(h, w), w * resolution // max(h, w)
        factor = self.pipe.vae_scale_factor
        latent = (self.format.ensemble_size, self.pipe.vae.config.latent_channels, -(-h // factor), -(-w // factor))
        return torch.zeros(latent, device=self.device, dtype=self.pipe.dtype)

    def predict(self, sample_id, rgb):
        noise = (
            dict(latents=self.zero_latents(rgb.shape[:2]))
            if self.format.zero_noise
            else dict(generator=_generator(self.seed, sample_id, self.device))
        )
        # A PIL image: the pipeline's latent-shape check reads numpy arrays as channels-first. Its image processor
        # turns a PIL image back into the same uint8 array first, so the pixels are those of ``rgb`` either way.
        out = self.pipe(
            Image.fromarray(rgb),
            num_inference_steps=self.format.steps,
            ensemble_size=self.format.ensemble_size,
            processing_resolution=self.resolution,
            match_input_resolution=True,
            output_type="np",
            **noise,
        )
        return np.asarray(out.prediction, dtype=np.float32).reshape(rgb.shape[:2])


def _marigold_format(kind):
    return lambda path, device=None, seed=0: MarigoldPredictor(path, kind, device=device, seed=seed)


# ``--model KIND=DIR`` kinds of the adapters above: factory(path, device=, seed=) -> Predictor.
PEERS = {
    "depth-anything": lambda path, device=None, seed=0: DepthAnythingV1Predictor(path, device=device),
    "depth-pro": lambda path, device=None, seed=0: DepthProPredictor(path, device=device),
    **{kind: _marigold_format(kind) for kind in MARIGOLD_PEERS},
}
