"""Combining affine-invariant depth maps of different models: the paper's ensemble (Table 2, PrimeDepth + Depth
Anything), used both at inference and by the evaluation harness.

Each map is brought to a common affine-invariant normalisation without ground truth: shift by its median, divide
by its mean absolute deviation from the median (the MiDaS scale-shift normalisation); the ensemble is the
pixel-wise mean of the normalised maps, again an affine-invariant inverse depth.
"""

from __future__ import annotations

import numpy as np

NORMALISATION = "each map minus its median, divided by its mean absolute deviation from the median"
COMBINATION = "pixel-wise mean of the normalised maps"


def normalise_affine_invariant(pred: np.ndarray) -> np.ndarray:
    """Zero median, unit mean absolute deviation (a constant map only loses its median)."""
    centred = pred - np.median(pred)
    spread = np.mean(np.abs(centred))
    return centred / spread if spread > 0 else centred


def average_normalised(maps: list[np.ndarray]) -> np.ndarray:
    """float32 pixel-wise mean of the normalised maps (all of one shape)."""
    shapes = {m.shape for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members must have one shape, got {sorted(shapes)}")
    return np.mean([normalise_affine_invariant(m) for m in maps], axis=0).astype(np.float32)
