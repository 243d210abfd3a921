"""Dataset specs -> datasets, and a deterministic weighted mixture indexed by global sample number.

Sample ``i`` of a mixture is a pure function of (seed, i): which dataset, which item, crop and flip are drawn from
``numpy.random.default_rng([seed, i])``. So the data order survives a stop/resume exactly and does not depend on
the number of data workers; multi-process training gives each process its own slice of every global batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..constants import SEED_STRIDE
from .common import RawSample, prepare_sample
from .hypersim import HypersimDataset
from .pseudo import PseudoLabelledFolder
from .scenes import render_scene
from .vkitti import VKITTI2Dataset


class SceneSource:
    """Procedural scenes (``primedepth.data.scenes``), rendered on the fly at the training resolution."""

    def __init__(
        self, resolution, length: int = 1_000_000, seed: int = 0, indoor: bool | None = None, max_objects: int = 5
    ):
        self.resolution, self.length, self.seed = tuple(resolution), int(length), int(seed)
        self.indoor, self.max_objects = indoor, max_objects

    def __len__(self):
        return self.length

    def __getitem__(self, index: int) -> RawSample:
        h, w = self.resolution
        s = render_scene(self.seed * SEED_STRIDE + index, h, w, indoor=self.indoor, max_objects=self.max_objects)
        return RawSample(s.image, s.depth, s.valid, s.labels, s.caption, "depth", f"scene {index}")


def build_source(spec: dict, resolution):
    kind = spec["kind"]
    args = {k: v for k, v in spec.items() if k not in ("kind", "weight")}
    if kind == "scenes":
        return SceneSource(resolution, **args)
    if kind == "hypersim":
        return HypersimDataset(**args)
    if kind == "vkitti2":
        return VKITTI2Dataset(**args)
    if kind == "pseudo":
        return PseudoLabelledFolder(**args)
    raise ValueError(f"unknown dataset kind {kind!r} (scenes, hypersim, vkitti2, pseudo)")


class Mixture(Dataset):
    """Weighted mixture; ``train=True`` draws items, crops and flips at random (seeded), otherwise item ``i`` of
    the concatenation, centre-cropped, unflipped."""

    def __init__(self, sources: list, weights: list[float], resolution, seed: int, train: bool, hflip: bool):
        if not sources:
            raise ValueError("a mixture needs at least one dataset")
        for src in sources:
            if len(src) == 0:
                raise ValueError(f"dataset {type(src).__name__} is empty")
        w = np.asarray(weights, dtype=np.float64)
        if (w <= 0).any():
            raise ValueError(f"dataset weights must be positive, got {weights}")
        self.sources, self.p = sources, w / w.sum()
        self.resolution, self.seed, self.train, self.hflip = tuple(resolution), int(seed), train, hflip
        self.offsets = np.cumsum([0] + [len(s) for s in sources])

    def __len__(self):
        return int(self.offsets[-1]) if not self.train else 2**62

    def locate(self, index: int) -> tuple[int, int, np.random.Generator | None]:
        if self.train:
            rng = np.random.default_rng([self.seed, int(index)])
            k = int(rng.choice(len(self.sources), p=self.p))
            return k, int(rng.integers(len(self.sources[k]))), rng
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return k, int(index - self.offsets[k]), None

    def __getitem__(self, index: int) -> dict:
        k, item, rng = self.locate(index)
        sample = prepare_sample(self.sources[k][item], self.resolution, rng, hflip=self.hflip)
        sample["source"] = k
        return sample


def build_mixture(specs: list[dict], resolution, seed: int, train: bool, hflip: bool) -> Mixture:
    sources = [build_source(spec, resolution) for spec in specs]
    return Mixture(sources, [float(s.get("weight", 1.0)) for s in specs], resolution, seed, train, hflip)


class StepSampler(Sampler):
    """Yields the sample numbers of this process's micro-batches from ``start_step`` on.

    Global batch of step ``s`` = numbers ``s * B .. s * B + B - 1``; micro-batch ``a`` of process ``r`` takes
    ``B/(A*P)`` consecutive numbers at offset ``(a * P + r) * B/(A*P)``.
    """

    def __init__(
        self, global_batch: int, grad_accum: int, num_processes: int, rank: int, start_step: int, max_steps: int
    ):
        per = global_batch // (grad_accum * num_processes)
        if per * grad_accum * num_processes != global_batch:
            raise ValueError(
                f"train.batch_size {global_batch} is not divisible by grad_accum {grad_accum} x "
                f"{num_processes} processes"
            )
        self.B, self.A, self.P, self.r, self.per = global_batch, grad_accum, num_processes, rank, per
        self.start, self.stop = start_step, max_steps

    def __iter__(self):
        for step in range(self.start, self.stop):
            for a in range(self.A):
                base = step * self.B + (a * self.P + self.r) * self.per
                yield from range(base, base + self.per)

    def __len__(self):
        return (self.stop - self.start) * self.A * self.per


def collate(samples: list[dict]) -> dict:
    out = {k: torch.stack([s[k] for s in samples]) for k in ("image", "target", "valid", "labels", "depth")}
    out["caption"] = [s["caption"] for s in samples]
    out["source"] = torch.tensor([s["source"] for s in samples])
    return out
