"""Depth Anything V2 through transformers (``AutoModelForDepthEstimation``): the ensemble partner of PrimeDepth at
inference and the peer of the evaluation.

It predicts affine-invariant inverse depth like PrimeDepth; the map is upsampled (bilinear) to the size asked for.
Weights come from a folder or a hub id; when the hub cannot be reached only the cache is looked at, so missing
weights are one clear error within seconds.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from transformers import AutoImageProcessor, AutoModelForDepthEstimation

from ..utils.hub import cache_only, offline_reason
from .loading import WeightsNotFoundError
from .model_folder import ModelError, check_library_folder

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


class DepthAnything:
    """A loaded Depth Anything model; ``predict`` maps an RGB image to inverse depth of a given size."""

    def __init__(
        self,
        source: str | Path,
        name: str = "depth-anything-v2",
        device: str | torch.device = "cpu",
        cache_dir: str | None = None,
        local_files_only: bool = False,
    ):
        self.name, self.source, self.device = name, str(source), torch.device(device)
        local = cache_only(local_files_only)
        kwargs = dict(cache_dir=cache_dir, local_files_only=local)
        check_library_folder(source)  # a local folder: weights-only checks, code noted as ignored
        try:
            self.processor = AutoImageProcessor.from_pretrained(source, **kwargs)
            self.model = AutoModelForDepthEstimation.from_pretrained(source, **kwargs)
        except pickle.UnpicklingError:  # a downloaded .bin that transformers' weights-only load refused
            raise ModelError(
                f"{name} weights at {source} hold Python objects besides tensors; refused without unpickling them"
            ) from None
        except (OSError, ValueError) as err:  # ValueError: a path that is neither a folder nor a repo id
            where = "" if Path(source).exists() else (" (" + offline_reason() + ")" if local else "")
            raise WeightsNotFoundError(
                f"{name} weights not found at {source}{where}: {str(err).splitlines()[0]}\nDownload them once "
                f"with network access (e.g. `hf download {DEPTH_ANYTHING_V2[name]} --local-dir DIR`) and pass "
                f"{name}=DIR."
            ) from None
        self.model.to(self.device).eval()

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> DepthAnything:
        name, source = parse_member(spec)
        return cls(source, name=name, **kwargs)

    @torch.no_grad()
    def predict(self, rgb: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """float32 inverse depth of ``size`` (default: the image's) for an HxWx3 uint8 image."""
        inputs = self.processor(images=rgb, return_tensors="pt").to(self.device)
        out = self.model(**inputs).predicted_depth[:, None].float()
        out = torch.nn.functional.interpolate(
            out, size=tuple(size or rgb.shape[:2]), mode="bilinear", align_corners=False
        )
        return out[0, 0].cpu().numpy().astype(np.float32)
