"""``primedepth demo``: a model on held-out rendered scenes, scored like the evaluation harness, with a gallery.

The scenes are those of the trainer's held-out validation (data seed 7, never in the training stream): scene ``i``
is ``render_scene(7 * SEED_STRIDE + i)``, as in the trainer's ``SceneSource``. Each prediction goes through
the public pipeline (its caption is the scene's own), is aligned to the ground truth by least squares in disparity
space and scored with ``primedepth.evaluation`` (sky, i.e. infinite depth, excluded); metrics are averaged over
scenes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import HELD_OUT_SEED
from ..data.scenes import held_out_scenes
from ..evaluation.protocol import score_in_own_range
from ..outputs.colour import show_depth
from ..utils.atomic import atomic_path


@dataclass
class DemoResult:
    metrics: dict[str, float]
    scenes: int
    seconds: float
    gallery: Path | None
    inverse_depth: list[np.ndarray]  # the raw predictions, one per scene
    predict_seconds: float  # time spent in the pipeline alone (no rendering, scoring or gallery)


def write_gallery(path: Path, scenes: list, predictions: list[np.ndarray], scores: list[dict]) -> None:
    """Rows of RGB | ground truth | aligned prediction | AbsRel error map (near = warm, colour bars), written
    atomically."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 2.1 * len(scenes)), layout="constrained")
    axes = fig.subplots(len(scenes), 4, squeeze=False)
    for row, scene, aligned, score in zip(axes, scenes, predictions, scores):
        valid = np.isfinite(scene.depth)
        gt = np.where(valid, scene.depth, np.nan)
        vmin, vmax = np.nanmin(gt), np.nanmax(gt)
        error = np.where(
            valid, np.abs(aligned - np.where(valid, scene.depth, 1.0)) / np.where(valid, scene.depth, 1.0), np.nan
        )
        row[0].imshow(scene.image, interpolation="nearest")
        show_depth(row[1], gt, vmin, vmax, log=True)  # outdoor scenes reach hundreds of metres
        show_depth(row[2], np.where(valid, aligned, np.nan), vmin, vmax, log=True)
        image = row[3].imshow(error, cmap="magma", vmin=0, vmax=0.3, interpolation="nearest")
        fig.colorbar(image, ax=row[3], fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
        titles = [
            "RGB",
            "ground truth",
            f"prediction  δ1 {score['delta1']:.2f}",
            f"|error| / depth  AbsRel {score['abs_rel']:.3f}",
        ]
        for ax, title in zip(row, titles):
            ax.set_title(title, fontsize=7)
            ax.set_xticks([]), ax.set_yticks([])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def run_demo(
    pipe,
    scenes: int = 200,
    gallery: Path | None = None,
    gallery_rows: int = 6,
    batch_size: int = 20,
    noise: str = "none",
    resolution: int = 64,
    seed: int = HELD_OUT_SEED,
) -> DemoResult:
    """Predict ``scenes`` held-out scenes (of data seed ``seed``) with ``pipe``, score them, and write a gallery of
    the first rows."""
    start = time.perf_counter()
    rendered = held_out_scenes(scenes, resolution, seed)
    per_scene, aligned_maps, predictions, predict_seconds = [], [], [], 0.0
    for first in range(0, scenes, batch_size):
        chunk = rendered[first : first + batch_size]
        t = time.perf_counter()
        out = pipe(
            [s.image for s in chunk], caption=[s.caption for s in chunk], noise=noise, seed=first, batch_size=batch_size
        )
        predict_seconds += time.perf_counter() - t
        predictions += out.inverse_depth
        for scene, inverse_depth in zip(chunk, out.inverse_depth):
            score, aligned = score_in_own_range(inverse_depth, scene.depth)
            per_scene.append(score)
            if len(aligned_maps) < gallery_rows:
                aligned_maps.append(aligned)
    metrics = {k: float(np.mean([s[k] for s in per_scene])) for k in per_scene[0]}
    if gallery is not None:
        write_gallery(gallery, rendered[:gallery_rows], aligned_maps, per_scene[:gallery_rows])
    return DemoResult(metrics, scenes, time.perf_counter() - start, gallery, predictions, predict_seconds)
