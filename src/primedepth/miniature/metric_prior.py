"""A small metric depth model of the miniature world: a real, coarse metric prior to fuse PrimeDepth-mini with.

A convolutional encoder-decoder maps a rendered scene's image to log depth in metres on a grid four times coarser
than the image (upsampled bilinearly, so it is smooth like the metric models, without their fine structure), and
from its pooled features the focal length relative to the image width. It is trained on rendered scenes of one data
seed (never the held-out one) with an L1 loss on log depth and on log focal length: a few CPU minutes.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from ..constants import SEED_STRIDE
from .scene import render_scene

TRAIN_DATA_SEED = 3  # rendered-scene data seed of the prior's training set (the held-out seed is another)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(4, cout), nn.GELU())


class MiniMetricPrior(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> (log depth in metres at H/4 x W/4, log(focal / width))."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
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

    @torch.no_grad()
    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """(metric depth at the image's size, float32; focal length in pixels) for an H x W x 3 uint8 image."""
        x = torch.from_numpy(np.asarray(rgb, np.float32) / 255).permute(2, 0, 1)[None]
        log_depth, log_focal = self.eval()(x)
        depth = nn.functional.interpolate(log_depth[:, None], size=rgb.shape[:2], mode="bilinear", align_corners=False)
        return depth.exp()[0, 0].numpy().astype(np.float32), float(math.exp(log_focal[0]) * rgb.shape[1])


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
    model = MiniMetricPrior(width)
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
