"""A small metric depth model of the miniature world: a real, coarse metric prior to fuse PrimeDepth-mini with.

A convolutional encoder-decoder maps a rendered scene's image to log depth in metres on a grid four times coarser
than the image (upsampled bilinearly, so it is smooth like the metric models, without their fine structure), and
from its pooled features the focal length relative to the image width. It is trained on rendered scenes of one data
seed (never the held-out one) with an L1 loss on log depth and on log focal length: a few CPU minutes.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..constants import SEED_STRIDE
from ..data.scenes import render_scene

TRAIN_DATA_SEED = 3  # rendered-scene data seed of the prior's training set (the held-out seed is another)


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


def training_scenes(count: int, resolution: int, data_seed: int = TRAIN_DATA_SEED):
    """(images (N, 3, R, R) float, log depth (N, R, R) with NaN for sky, log(focal / width) (N,))."""
    scenes = [render_scene(data_seed * SEED_STRIDE + i, resolution) for i in range(count)]
    images = torch.from_numpy(np.stack([s.image for s in scenes]).astype(np.float32) / 255).permute(0, 3, 1, 2)
    depth = torch.from_numpy(np.log(np.stack([s.depth for s in scenes]).astype(np.float32)))
    focal = torch.tensor([math.log(s.intrinsics[0, 0] / resolution) for s in scenes], dtype=torch.float32)
    return images, depth.where(torch.isfinite(depth), torch.nan), focal


def train_metric_prior(
    seed: int, data, steps: int = 800, batch: int = 16, lr: float = 2e-3, width: int = 16, log=None
) -> MiniMetricPrior:
    """Train a ``MiniMetricPrior`` with ``seed`` (initialisation and batches) on ``data`` from ``training_scenes``."""
    images, log_depth, log_focal = data
    torch.manual_seed(seed)
    model = MiniMetricPrior(width, resolution=images.shape[-1])
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    coarse = nn.functional.avg_pool2d(log_depth.nan_to_num(0)[:, None], 4)[:, 0]  # the model's grid
    coarse_ok = nn.functional.avg_pool2d(torch.isfinite(log_depth).float()[:, None], 4)[:, 0] > 0.999
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=generator)
        flip = torch.rand(batch, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], images[idx].flip(-1), images[idx])
        target = torch.where(flip[:, None, None], coarse[idx].flip(-1), coarse[idx])
        ok = torch.where(flip[:, None, None], coarse_ok[idx].flip(-1), coarse_ok[idx])
        pred, focal = model(x)
        loss = (pred - target).abs()[ok].mean() + (focal - log_focal[idx]).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if log is not None and (step % 250 == 0 or step == steps - 1):
            log(f"  seed {seed} step {step}: loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)")
    return model.eval()


def metric_scores(depth: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """AbsRel and δ1 of metric ``depth`` against ``gt`` without any alignment, and the depth-boundary F1."""
    from ..evaluation.boundary import boundary_f1
    from ..evaluation.metrics import compute_metrics

    m = compute_metrics(np.maximum(depth, 1e-3), np.where(valid, gt, 1.0), valid)
    return {"abs_rel": m["abs_rel"], "delta1": m["delta1"], "boundary_f1": boundary_f1(depth, gt, valid)}


def metric_demo(scenes: list, inverse_depths: list[np.ndarray], prior: MiniMetricPrior) -> dict[str, dict]:
    """Mean metric scores over rendered ``scenes`` of the prior alone and of its fusion with the predictions."""
    from ..outputs.metric_fusion import fuse_with_prior

    rows = {"prior": [], "fusion": []}
    for scene, inverse in zip(scenes, inverse_depths):
        valid = np.isfinite(scene.depth) & (scene.depth > 0)
        depth, _ = prior.predict(scene.image)
        rows["prior"].append(metric_scores(depth, scene.depth, valid))
        rows["fusion"].append(metric_scores(fuse_with_prior(inverse, depth).depth, scene.depth, valid))
    return {k: {m: float(np.mean([r[m] for r in v])) for m in v[0]} for k, v in rows.items()}
