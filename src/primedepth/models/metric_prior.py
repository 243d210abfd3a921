"""The small metric depth model of the miniature world: a real, coarse metric prior to fuse PrimeDepth-mini with.

A convolutional encoder-decoder maps an image to log depth in metres on a grid four times coarser than the image
(upsampled bilinearly, so it is smooth like the metric models, without their fine structure), and from its pooled
features the focal length relative to the image width. It is trained and measured in ``miniature/metric_prior.py``;
the trained weights ship as ``primedepth-mini-metric``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(4, cout), nn.GELU())


class MiniMetricPrior(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> (log depth in metres at H/4 x W/4, log(focal / width))."""

    def __init__(self, width: int = 16, resolution: int = 64):
        super().__init__()
        self.resolution = resolution  # the square size it is trained at; other images are resized to it
        self.width = w = width
        self.down = nn.ModuleList(
            [_block(3, w, 2), _block(w, 2 * w, 2), _block(2 * w, 3 * w, 2), _block(3 * w, 4 * w, 2)]
        )
        self.up = nn.ModuleList([_block(4 * w + 3 * w, 3 * w, 1), _block(3 * w + 2 * w, 2 * w, 1)])
        self.depth_head = nn.Conv2d(2 * w, 1, 3, 1, 1)
        self.focal_head = nn.Sequential(nn.Linear(4 * w, 64), nn.GELU(), nn.Linear(64, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, skips = images * 2 - 1, []
        for block in self.down:
            x = block(x)
            skips.append(x)
        focal = self.focal_head(x.mean(dim=(2, 3)))[:, 0]
        for block, skip in zip(self.up, (skips[2], skips[1])):
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.depth_head(x)[:, 0] + 1.5, focal - 0.2  # centred on ~4.5 m and f ~ 0.8 W

    def save_pretrained(self, folder: str | Path, provenance: dict | None = None) -> None:
        """``config.json`` (width, provenance) and ``model.safetensors``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, folder / "model.safetensors")
        config = {
            "_class_name": type(self).__name__,
            "width": self.width,
            "resolution": self.resolution,
            **(provenance or {}),
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> MiniMetricPrior:
        folder = Path(folder)
        if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(f"{folder}: not a mini metric prior folder (config.json, model.safetensors)")
        config = json.loads((folder / "config.json").read_text())
        model = cls(int(config["width"]), int(config.get("resolution", 64)))
        model.load_state_dict(load_file(folder / "model.safetensors"))
        return model.eval()

    @torch.no_grad()
    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """(metric depth at the image's size, float32; focal length in pixels) for an H x W x 3 uint8 image; the
        image is resized to the training resolution first."""
        x = torch.from_numpy(np.asarray(rgb, np.float32) / 255).permute(2, 0, 1)[None]
        size = (self.resolution, self.resolution)
        if x.shape[-2:] != size:
            x = nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True)
        log_depth, log_focal = self.eval()(x)
        depth = nn.functional.interpolate(log_depth[:, None], size=rgb.shape[:2], mode="bilinear", align_corners=False)
        return depth.exp()[0, 0].numpy().astype(np.float32), float(math.exp(log_focal[0]) * rgb.shape[1])


def embedded_metric_prior_dir() -> Path:
    """The small metric prior shipped with the package (``primedepth-mini-metric``)."""
    return Path(__file__).resolve().parents[1] / "weights" / "primedepth-mini-metric"
