"""Model adapters: everything the harness runs is a ``Predictor`` that turns one sample's RGB into an
affine-invariant map and says in which space (``depth`` or ``disparity``) that map is affine, which is the space the
protocol aligns it in. Peers load only local weights: nothing is downloaded, and absent weights give one clear error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..pipelines.loading import WeightsNotFoundError


def _require_dir(path: str | Path, what: str, hub_id: str) -> Path:
    path = Path(path)
    if not (path.is_dir() and any(path.iterdir())):
        raise WeightsNotFoundError(
            f"{what} weights not found at {path}. Nothing is downloaded during evaluation: on a machine with "
            f"internet run `huggingface-cli download {hub_id} --local-dir {path}` and pass that folder."
        )
    return path


def _generator(seed: int, sample_id: str, device) -> torch.Generator:
    """A per-sample generator, so results do not depend on order, sharding or resumption."""
    offset = int.from_bytes(hashlib.sha256(sample_id.encode()).digest()[:4], "little")
    return torch.Generator(device=device).manual_seed(seed + offset)


class Predictor:
    name: str = "model"
    space: str = "disparity"

    def predict(self, sample_id: str, rgb: np.ndarray) -> np.ndarray:
        """HxW float32 affine-invariant prediction for an HxWx3 uint8 image (any resolution; resized later)."""
        raise NotImplementedError


class PrimeDepthPredictor(Predictor):
    """PrimeDepth through :class:`primedepth.PrimeDepthPipeline`; its output is affine-invariant inverse depth."""

    space = "disparity"

    def __init__(self, model: str = "tiny-random", device: str | None = None, dtype: str = "fp32", seed: int = 0):
        """``dtype``: a precision name of ``PrimeDepthPipeline.set_precision`` (fp32, bf16, ..., auto)."""
        from primedepth import PrimeDepthPipeline

        self.name, self.seed = "primedepth" if model != "tiny-random" else "primedepth-tiny-random", seed
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.pipe = PrimeDepthPipeline.from_pretrained(model, device=device).set_precision(dtype)

    def predict(self, sample_id, rgb):
        out = self.pipe(rgb, caption="none", seed=self.seed)
        return np.asarray(out.inverse_depth[0], dtype=np.float32)


class DepthAnythingV2Predictor(Predictor):
    """Depth Anything V2 as a transformers depth-estimation model (e.g. ``depth-anything/Depth-Anything-V2-Large-hf``
    saved locally); it predicts affine-invariant inverse depth, upsampled here to the input size."""

    name, space = "depth-anything-v2", "disparity"

    def __init__(self, path: str | Path, device: str | None = None):
        from primedepth.pipelines.depth_anything import DepthAnything

        path = _require_dir(path, "Depth Anything V2", "depth-anything/Depth-Anything-V2-Large-hf")
        self.model = DepthAnything(
            path, device=device or ("cuda" if torch.cuda.is_available() else "cpu"), local_files_only=True
        )

    def predict(self, sample_id, rgb):
        return self.model.predict(rgb)


MARIGOLD_SETTINGS = {
    "v1-0": dict(num_inference_steps=50, ensemble_size=10),
    "1-step": dict(num_inference_steps=1, ensemble_size=1),
}


class MarigoldPredictor(Predictor):
    """Marigold through diffusers' ``MarigoldDepthPipeline`` (``prs-eth/marigold-depth-v1-0`` saved locally), in the
    v1-0 protocol (50 steps, ensemble of 10) or 1-step; its output is affine-invariant depth."""

    space = "depth"

    def __init__(
        self,
        path: str | Path,
        setting: str = "v1-0",
        device: str | None = None,
        seed: int = 0,
        processing_resolution: int = 768,
    ):
        from diffusers import MarigoldDepthPipeline

        if setting not in MARIGOLD_SETTINGS:
            raise ValueError(f"Marigold setting must be one of {sorted(MARIGOLD_SETTINGS)}, got {setting!r}")
        path = _require_dir(path, "Marigold", "prs-eth/marigold-depth-v1-0")
        self.name, self.setting, self.seed = f"marigold-{setting}", MARIGOLD_SETTINGS[setting], seed
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.processing_resolution = processing_resolution
        self.pipe = MarigoldDepthPipeline.from_pretrained(path, local_files_only=True).to(self.device)
        self.pipe.set_progress_bar_config(disable=True)

    def predict(self, sample_id, rgb):
        out = self.pipe(
            rgb,
            **self.setting,
            processing_resolution=self.processing_resolution,
            match_input_resolution=True,
            generator=_generator(self.seed, sample_id, self.device),
            output_type="np",
        )
        return np.asarray(out.prediction, dtype=np.float32).reshape(rgb.shape[:2])


def prediction_filename(sample_id: str) -> str:
    return sample_id.replace("/", "__") + ".npy"


class SavedPredictor(Predictor):
    """Scores predictions saved as ``<dir>/<sample id with '/' -> '__'>.npy`` (2-D float arrays, any resolution)."""

    def __init__(self, directory: str | Path, space: str = "disparity", name: str | None = None):
        self.directory, self.space = Path(directory), space
        self.name = name or self.directory.name
        if not self.directory.is_dir():
            raise FileNotFoundError(f"predictions directory {self.directory} does not exist")

    def predict(self, sample_id, rgb):
        path = self.directory / prediction_filename(sample_id)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no saved prediction for sample {sample_id}")
        try:
            pred = np.load(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc})") from exc
        if pred.ndim == 3 and 1 in (pred.shape[0], pred.shape[-1]):
            pred = pred.squeeze()
        if pred.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D depth map, got shape {pred.shape}")
        return pred.astype(np.float32)
