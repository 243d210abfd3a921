"""Model adapters: everything the harness runs is a ``Predictor`` that turns one sample's RGB into an
affine-invariant map and says in which space (``depth`` or ``disparity``) that map is affine, which is the space the
protocol aligns it in. Peers load only local weights: nothing is downloaded, and absent weights give one clear error.

The model libraries (the PrimeDepth pipeline's diffusers, transformers) are imported when a predictor is built: they
take seconds to import, and scoring saved predictions or listing ``--help`` needs neither."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..conversion.loading import WeightsNotFoundError
from ..utils.devices import auto_device


def _require_dir(path: str | Path, what: str, hub_id: str) -> Path:
    path = Path(path)
    if not (path.is_dir() and any(path.iterdir())):
        raise WeightsNotFoundError(
            f"{what} weights not found at {path}. Nothing is downloaded during evaluation: on a machine with "
            f"internet run `huggingface-cli download {hub_id} --local-dir {path}` and pass that folder."
        )
    return path


def _device(device: str | None) -> str:
    return device or str(auto_device())


def _generator(seed: int, sample_id: str, device) -> torch.Generator:
    """A per-sample generator, so results do not depend on order, sharding or resumption."""
    offset = int.from_bytes(hashlib.sha256(sample_id.encode()).digest()[:4], "little")
    return torch.Generator(device=device).manual_seed(seed + offset)


class Predictor:
    """``resizes_input``: the model is given the native RGB and brings it to the resolution its authors evaluate
    with itself (see ``prepare``); otherwise the harness gives it the RGB at the dataset's ``processing_res``."""

    name: str = "model"
    space: str = "disparity"
    resizes_input: bool = False

    def prepare(self, config) -> None:
        """Called with the dataset's ``DatasetConfig`` before its samples are predicted."""

    def input_note(self, config) -> str:
        """What the model was run on, for the report."""
        if self.resizes_input:
            return "native RGB, resized by the model itself"
        if config.processing_res:
            return f"RGB resized to long side {config.processing_res} px by the harness"
        return "native RGB"

    def source(self, sample_id: str) -> str:
        """Where a sample's prediction comes from, for error messages."""
        return f"{self.name} prediction for {sample_id}"

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
        self.pipe = PrimeDepthPipeline.from_pretrained(model, device=_device(device)).prepare_for_inference(dtype)

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
        self.model = DepthAnything(path, device=_device(device), local_files_only=True)

    def predict(self, sample_id, rgb):
        return self.model.predict(rgb)


def prediction_filename(sample_id: str) -> str:
    return sample_id.replace("/", "__") + ".npy"


def marigold_prediction_path(sample_id: str, names: str = "id") -> str:
    """Where Marigold's ``script/depth/infer.py`` saves the prediction of an RGB image (relative to its output
    folder): the image's folder, then ``pred_<image name>.npy`` ("id": KITTI, ETH3D, ScanNet, DIODE) or, for
    ``rgb_<n>.png``, ``pred_<n>.npy`` ("rgb_id": NYUv2)."""
    folder, _, filename = sample_id.rpartition("/")
    stem = filename.rsplit(".", 1)[0]
    if names == "rgb_id":
        stem = stem.split("_")[1] if "_" in stem else stem
    elif names != "id":
        raise ValueError(f"unknown Marigold prediction naming {names!r}")
    return f"{folder}/pred_{stem}.npy" if folder else f"pred_{stem}.npy"


class SavedPredictor(Predictor):
    """Scores predictions saved as ``<dir>/<sample id with '/' -> '__'>.npy`` (this harness's runs) or in the layout
    of Marigold's ``script/depth/infer.py`` (``<dir>/<image folder>/pred_<id>.npy``, see
    :func:`marigold_prediction_path`): 2-D float arrays, or 1xHxW / HxWx1."""

    def __init__(self, directory: str | Path, space: str = "disparity", name: str | None = None):
        self.directory, self.space = Path(directory), space
        self.name = name or self.directory.name
        self.names = "id"
        if not self.directory.is_dir():
            raise FileNotFoundError(f"predictions directory {self.directory} does not exist")

    def prepare(self, config) -> None:
        self.names = config.prediction_names

    def input_note(self, config) -> str:
        return f"saved predictions from {self.directory}"

    def path(self, sample_id: str) -> Path:
        ours = self.directory / prediction_filename(sample_id)
        marigold = self.directory / marigold_prediction_path(sample_id, self.names)
        return marigold if marigold.is_file() and not ours.is_file() else ours

    def source(self, sample_id: str) -> str:
        return str(self.path(sample_id))

    def predict(self, sample_id, rgb):
        path = self.path(sample_id)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no saved prediction for sample {sample_id} "
                f"(nor {self.directory / marigold_prediction_path(sample_id, self.names)})"
            )
        try:
            pred = np.load(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable .npy array ({exc})") from exc
        if pred.ndim == 3 and 1 in (pred.shape[0], pred.shape[-1]):
            pred = pred.squeeze()
        if pred.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D depth map, got shape {pred.shape}")
        return pred.astype(np.float32)
