"""Fake predictors with known answers, for testing the harness without a real model."""

from __future__ import annotations

import numpy as np

from primedepth.evaluation import Predictor


class AffineOfGT(Predictor):
    """Returns an exact affine transform of the GT in ``space`` (disparity: a / gt + b), junk where GT is unknown."""

    def __init__(self, dataset, space="disparity", a=3.0, b=0.25, name=None):
        self.dataset, self.space, self.a, self.b = dataset, space, a, b
        self.name = name or f"affine-{space}"
        self.index = {e[0]: i for i, e in enumerate(dataset.entries)}
        self.calls = []

    def predict(self, sample_id, rgb):
        self.calls.append(sample_id)
        gt = self.dataset[self.index[sample_id]].depth.astype(np.float64)
        known = gt > 0
        if self.space == "disparity":
            base = np.where(known, 1.0 / np.where(known, gt, 1.0), 7.0)
        else:
            base = np.where(known, gt, 7.0)
        return (self.a * base + self.b).astype(np.float32)


class Constant(Predictor):
    name, space = "constant", "depth"

    def predict(self, sample_id, rgb):
        return np.full(rgb.shape[:2], 2.0, dtype=np.float32)


class Noisy(AffineOfGT):
    """An affine transform of the GT times fixed per-pixel noise in [1 - amount, 1 + amount] (seeded per sample)."""

    def __init__(self, dataset, amount=0.5, name="noisy", space="disparity"):
        super().__init__(dataset, space, name=name)
        self.amount = amount

    def predict(self, sample_id, rgb):
        pred = super().predict(sample_id, rgb)
        rng = np.random.default_rng(sum(sample_id.encode()))
        return (pred * rng.uniform(1 - self.amount, 1 + self.amount, pred.shape)).astype(np.float32)


def perfect_affine(dataset):
    """``python=`` factory: the exact affine transform of each dataset's GT (scores δ1 = 100 %, AbsRel = 0)."""
    return AffineOfGT(dataset, "disparity", name="perfect-affine")


def noisy(dataset):
    """``python=`` factory: the exact affine transform times ±30 % per-pixel noise."""
    return Noisy(dataset, 0.3)
