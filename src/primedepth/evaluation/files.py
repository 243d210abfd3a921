"""Crash-safe result files: every summary, table, plot and prediction goes through ``primedepth.utils.atomic``, so
a killed run never leaves a half-written file behind (and the temporaries of a killed run are recognised and
removed by the next one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..utils.atomic import atomic_path, atomic_write_text


def write_text(path: str | Path, text: str) -> None:
    atomic_write_text(path, text)


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)
