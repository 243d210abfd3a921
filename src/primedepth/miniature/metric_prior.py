"""Training and measuring the miniature world's small metric prior (the network: ``models/metric_prior.py``).

It is trained on rendered scenes of one data seed (never the held-out one) with an L1 loss on log depth and on log
focal length, a few CPU minutes, and scored without any alignment, alone and fused with PrimeDepth-mini.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from ..constants import SEED_STRIDE
from ..data.scenes import render_scene
from ..models.metric_prior import MiniMetricPrior

TRAIN_DATA_SEED = 3  # rendered-scene data seed of the prior's training set (the held-out seed is another)


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
