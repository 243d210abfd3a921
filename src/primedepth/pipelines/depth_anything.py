"""Depth Anything V2 through transformers (``AutoModelForDepthEstimation``): the ensemble partner of PrimeDepth at
inference and the peer of the evaluation.

It predicts affine-invariant inverse depth like PrimeDepth; the map is upsampled to the size asked for, bilinear
without corner alignment as Depth Anything's own ``run.py`` does (V2's ``infer_image`` aligns the corners; the two
differ by a fraction of an output pixel). ``predict_inverse_depth`` is the one inference every user of the model
runs: the ensemble, the metric prior, the evaluation's V1 and V2 peers and pseudo-labelling.
Weights come from a folder or a hub id; when the hub cannot be reached only the cache is looked at, so missing
weights are one clear error within seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..conversion.loading import weights_or_error
from ..utils.hub import cache_only

DEPTH_ANYTHING_V2 = {
    "depth-anything-v2-small": "depth-anything/Depth-Anything-V2-Small-hf",
    "depth-anything-v2-base": "depth-anything/Depth-Anything-V2-Base-hf",
    "depth-anything-v2-large": "depth-anything/Depth-Anything-V2-Large-hf",
}
DEPTH_ANYTHING_V2["depth-anything-v2"] = DEPTH_ANYTHING_V2["depth-anything-v2-large"]  # the paper's partner


def parse_member(spec: str) -> tuple[str, str]:
    """``depth-anything-v2[-small|-base|-large][=HUB_ID_OR_FOLDER]`` -> (name, weights source)."""
    name, _, source = spec.partition("=")
    if name not in DEPTH_ANYTHING_V2:
        raise ValueError(
            f"unknown ensemble member {name!r}; choose one of {', '.join(sorted(DEPTH_ANYTHING_V2))}, "
            "optionally =HUB_ID_OR_FOLDER"
        )
    return name, source or DEPTH_ANYTHING_V2[name]


def upsample(prediction: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A ``[1, h, w]`` (or ``[h, w]``) map resized to ``size`` (bilinear, corners not aligned), float32 numpy."""
    out = prediction.reshape(1, 1, *prediction.shape[-2:]).float()
    out = torch.nn.functional.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
    return out[0, 0].cpu().numpy().astype(np.float32)


@torch.no_grad()
def predict_inverse_depth(processor, model, image, size: tuple[int, int] | None = None) -> np.ndarray:
    """float32 inverse depth of ``size`` (default: the image's) for an image (H x W x 3 uint8 array or PIL image)
    through a transformers depth-estimation ``model`` and its image ``processor``."""
    if size is None:
        size = image.shape[:2] if isinstance(image, np.ndarray) else (image.height, image.width)
    inputs = processor(images=image, return_tensors="pt").to(model.device)
    return upsample(model(**inputs).predicted_depth, size)


class DepthAnything:
    """A loaded Depth Anything model; ``predict`` maps an RGB image to inverse depth of a given size."""

    def __init__(
        self,
        source: str | Path,
        name: str = "depth-anything-v2",
        device: str | torch.device = "cpu",
        cache_dir: str | None = None,
        local_files_only: bool = False,
        hub_id: str | None = None,
    ):
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.name, self.source, self.device = name, str(source), torch.device(device)
        kwargs = dict(cache_dir=cache_dir, local_files_only=cache_only(local_files_only, source))
        with weights_or_error(name, source, hub_id or DEPTH_ANYTHING_V2.get(name, str(source)), kwargs):
            self.processor = AutoImageProcessor.from_pretrained(source, **kwargs)
            self.model = AutoModelForDepthEstimation.from_pretrained(source, **kwargs)
        self.model.to(self.device).eval()

    @property
    def config(self):
        return self.model.config

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> DepthAnything:
        name, source = parse_member(spec)
        return cls(source, name=name, **kwargs)

    def predict(self, rgb: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """float32 inverse depth of ``size`` (default: the image's) for an HxWx3 uint8 image."""
        return predict_inverse_depth(self.processor, self.model, rgb, size)
