"""The dataset interface of the harness: protocol constants from a JSON config, a checked split, and samples that
carry everything scoring needs (RGB as the model sees it, metric GT, the validity mask with crops applied)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image


class DatasetError(RuntimeError):
    """A dataset on disk does not match its documented layout; the message names the file and the problem."""


@dataclass(frozen=True)
class DatasetConfig:
    """Protocol constants of one benchmark (see ``configs/<name>.json``)."""

    name: str
    title: str
    expected_count: int
    min_depth: float
    max_depth: float
    marigold_benchmark: bool = False  # one of Marigold's evaluation datasets (its peers then run at processing_res)
    processing_res: int | None = None  # long side of the RGB given to the model; None = native
    alignment_max_res: int | None = None  # long side at which scale/shift is fitted; None = full GT resolution
    eval_crop: tuple[int, int, int, int] | None = None  # fixed valid box (top, bottom, left, right), exclusive ends
    kitti_bm_crop: bool = False  # crop RGB and GT to the 352x1216 KITTI benchmark box before anything else
    garg_crop: bool = False  # KITTI Eigen/Garg valid box, relative to the (cropped) image size
    range_in_mask: bool = True  # GT outside (min_depth, max_depth) is invalid; False: the dataset's own mask only
    prediction_names: str = "id"  # Marigold's names of saved predictions: "id" pred_<rgb name>, "rgb_id" pred_<n>
    categories: tuple[str, ...] = ()
    description: str = ""

    @classmethod
    def load(cls, name: str) -> DatasetConfig:
        text = resources.files("primedepth.evaluation").joinpath("configs", f"{name}.json").read_text()
        raw = json.loads(text)
        raw["max_depth"] = math.inf if raw["max_depth"] is None else raw["max_depth"]
        for key in ("eval_crop", "categories"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        return cls(**raw)


@dataclass
class Sample:
    sample_id: str  # stable, unique key (the RGB path relative to the dataset root)
    rgb: np.ndarray  # HxWx3 uint8, after any protocol crop
    depth: np.ndarray  # HxW float32 metres, 0 where unknown
    valid: np.ndarray  # HxW bool: valid per the dataset's own mask, in range (where the protocol asks), in the crop
    category: str = ""


class DepthDataset:
    """Base class: subclasses list their entries (``discover`` or a split file) and read one entry's GT.

    An entry is a tuple of paths relative to ``root``; the first is the RGB image and is the sample id."""

    config_name: str = ""

    def __init__(self, root: str | Path, split_file: str | Path | None = None, allow_partial: bool = False):
        self.root = Path(root)
        self.config = DatasetConfig.load(self.config_name)
        if not self.root.is_dir():
            raise DatasetError(f"{self.config.title}: dataset root {self.root} is not a directory")
        self.entries = self._read_split(Path(split_file)) if split_file else self.discover()
        self.partial = len(self.entries) != self.config.expected_count
        if self.partial and not allow_partial:
            raise DatasetError(
                f"{self.config.title}: found {len(self.entries)} samples under {self.root}, the protocol has "
                f"{self.config.expected_count}; pass allow_partial (--allow-partial) to evaluate a subset anyway"
            )
        if not self.entries:
            raise DatasetError(f"{self.config.title}: no samples found under {self.root}")

    # -- what subclasses provide ------------------------------------------------------------------------------
    def discover(self) -> list[tuple[str, ...]]:
        """All entries of the protocol split found under ``root``, in a deterministic order."""
        raise NotImplementedError

    def read_depth(self, entry: tuple[str, ...], rgb_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``(depth in metres, dataset-specific validity)`` for one entry, at the RGB resolution."""
        raise NotImplementedError

    def category(self, entry: tuple[str, ...]) -> str:
        return ""

    # -- shared machinery -------------------------------------------------------------------------------------
    def _read_split(self, split_file: Path) -> list[tuple[str, ...]]:
        """A split list in Marigold's format: one sample a line, whitespace-separated relative paths (RGB, GT, then
        what the dataset needs). A line whose GT is ``None`` is a frame without ground truth (Marigold's KITTI list
        has 45 of them among its 697 lines) and is not part of the split, as in Marigold's KITTI dataset class."""
        if not split_file.is_file():
            raise DatasetError(f"split file {split_file} does not exist")
        lines = [(i, tuple(line.split())) for i, line in enumerate(split_file.read_text().splitlines(), 1)]
        lines = [(i, entry) for i, entry in lines if entry and not (len(entry) > 1 and entry[1] == "None")]
        for i, entry in lines:
            if len(entry) < 2:
                raise DatasetError(f"{split_file}:{i}: expected an image and its ground truth, got {entry[0]!r}")
            if not (self.root / entry[0]).is_file():
                raise DatasetError(f"{split_file}:{i}: image {self.root / entry[0]} does not exist")
        return [entry for _, entry in lines]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample:
        entry = self.entries[index]
        rgb = read_rgb(self.root / entry[0])
        depth, valid = self.read_depth(entry, rgb.shape[:2])
        if depth.shape != rgb.shape[:2]:
            raise DatasetError(f"{self.root / entry[1]}: depth is {depth.shape}, its image is {rgb.shape[:2]}")
        if self.config.kitti_bm_crop:
            rgb, depth, valid = kitti_benchmark_crop(rgb, depth, valid, self.root / entry[0])
        if self.config.range_in_mask:
            valid = valid & (depth > self.config.min_depth) & (depth < self.config.max_depth)
        valid = valid & self._crop_mask(depth.shape)
        return Sample(entry[0], rgb, depth.astype(np.float32), valid, self.category(entry))

    def _crop_mask(self, shape: tuple[int, int]) -> np.ndarray:
        mask = np.zeros(shape, dtype=bool)
        h, w = shape
        if self.config.eval_crop is not None:
            top, bottom, left, right = self.config.eval_crop
            mask[top:bottom, left:right] = True
        elif self.config.garg_crop:
            mask[int(0.3324324 * h) : int(0.91351351 * h), int(0.0359477 * w) : int(0.96405229 * w)] = True
        else:
            mask[:] = True
        return mask


KITTI_BM_HEIGHT, KITTI_BM_WIDTH = 352, 1216


def kitti_benchmark_crop(rgb, depth, valid, path):
    """The KITTI benchmark box: the bottom 352 rows and the central 1216 columns."""
    h, w = depth.shape
    if h < KITTI_BM_HEIGHT or w < KITTI_BM_WIDTH:
        raise DatasetError(f"{path}: {h}x{w} is smaller than the KITTI benchmark crop 352x1216")
    top, left = h - KITTI_BM_HEIGHT, (w - KITTI_BM_WIDTH) // 2
    box = (slice(top, top + KITTI_BM_HEIGHT), slice(left, left + KITTI_BM_WIDTH))
    return rgb[box], depth[box], valid[box]


def read_rgb(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: image does not exist")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read as an image ({exc})") from exc


def read_png_depth(path: Path, scale: float) -> np.ndarray:
    """A 16-bit PNG depth map in metres: stored value / ``scale`` (NYU and ScanNet 1000, KITTI 256); 0 = no GT."""
    if not path.is_file():
        raise DatasetError(f"{path}: depth map does not exist")
    try:
        with Image.open(path) as image:
            raw = np.asarray(image)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read as a PNG depth map ({exc})") from exc
    if raw.ndim != 2 or raw.dtype not in (np.uint16, np.int32, np.uint8):
        raise DatasetError(f"{path}: expected a single-channel 16-bit PNG, got {raw.dtype} with shape {raw.shape}")
    return raw.astype(np.float32) / scale
