"""Noise-free validation: mean loss terms and depth metrics over the first validation items, and the sample images
(RGB | target | prediction, as inverse depth) written to ``samples/step-NNNNNN.png``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.mixing import collate
from ..evaluation.protocol import score_in_own_range
from ..utils.atomic import atomic_path
from .ema import EMA


@contextlib.contextmanager
def ema_weights(model: torch.nn.Module, ema: EMA | None) -> Iterator[None]:
    """Run the block with the EMA weights in ``model`` (unchanged when ``ema`` is None), then put the raw ones back."""
    if ema is None:
        yield
        return
    raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ema.copy_to(model)
    try:
        yield
    finally:
        model.load_state_dict(raw)


@torch.no_grad()
def evaluate(forward: Callable, dataset, settings: dict) -> tuple[dict, list[np.ndarray]]:
    """Score the first ``settings["samples"]`` items of ``dataset`` in batches of ``settings["batch_size"]``.

    ``forward(batch)`` returns (loss terms, labeller output). Returns the mean of every loss term and depth metric,
    and the sample panels of the first ``settings["images"]`` items."""
    count = min(settings["samples"], len(dataset))
    loss_sums: dict[str, float] = {}
    metrics: dict[str, list] = {}
    panels = []
    for start in range(0, count, settings["batch_size"]):
        items = [dataset[i] for i in range(start, min(count, start + settings["batch_size"]))]
        terms, out = forward(collate(items))
        for key, value in terms.as_floats().items():
            loss_sums[key] = loss_sums.get(key, 0.0) + value * len(items)
        predictions = out.depth.float().mean(1).cpu().numpy()
        for item, prediction in zip(items, predictions):
            try:
                scores = score_in_own_range(prediction, item["depth"].numpy(), item["valid"].numpy())[0]
            except ValueError:  # fewer than two pixels with depth: nothing to score
                scores = {}
            for key, value in scores.items():
                metrics.setdefault(key, []).append(value)
            if len(panels) < settings["images"]:
                panels.append(sample_panel(item, prediction))
    results = {key: value / max(count, 1) for key, value in loss_sums.items()}
    results.update({key: float(np.mean(values)) for key, values in metrics.items()})
    return results, panels


def _percentile_stretch(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Stretch the 2nd..98th percentile of the valid pixels to [0, 1]."""
    values = x[valid] if valid.any() else x.reshape(-1)
    lo, hi = np.percentile(values, 2), np.percentile(values, 98)
    return np.clip((x - lo) / max(hi - lo, 1e-8), 0, 1)


def sample_panel(item: dict, prediction: np.ndarray) -> np.ndarray:
    """One row of the sample image, (H, 3 W, 3) in [0, 1]: RGB | target (black where invalid) | prediction."""
    rgb = (item["image"].permute(1, 2, 0).numpy() + 1) / 2
    valid = item["valid"].numpy()
    target = _percentile_stretch(item["target"].numpy(), valid) * valid
    predicted = _percentile_stretch(prediction, valid)
    return np.concatenate([rgb, np.repeat(target[..., None], 3, 2), np.repeat(predicted[..., None], 3, 2)], 1)


def write_sample_grid(path: Path, panels: list[np.ndarray]) -> np.ndarray:
    """Stack the panels into one uint8 image, write it as PNG (atomically) and return it."""
    grid = (np.clip(np.concatenate(panels, 0), 0, 1) * 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return grid
