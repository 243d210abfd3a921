"""DIODE validation, indoors + outdoor (325 + 446 = 771), in the layout of the official release
(``val/{indoors,outdoor}/scene_*/scan_*/<name>.png``; pass ``val`` or its parent) or of Marigold's extracted
``diode_val.tar`` (the same without ``val/``), with ``<name>_depth.npy`` (HxWx1 float32 metres) and
``<name>_depth_mask.npy`` (HxW, 1 = valid). The valid pixels are those of the mask file alone, as in Marigold's
DIODE dataset class: the 0.6-350 m range only clips the aligned prediction."""

from __future__ import annotations

import numpy as np

from .base import DatasetError, DepthDataset


def _load_npy(path):
    if not path.is_file():
        raise DatasetError(f"{path}: file does not exist")
    try:
        return np.load(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable .npy array ({exc})") from exc


class DIODEDataset(DepthDataset):
    config_name = "diode"

    def discover(self):
        entries = []
        images = {*self.root.glob("*/scene_*/scan_*/*.png"), *self.root.glob("*/*/scene_*/scan_*/*.png")}
        for rgb in sorted(images):
            stem = str(rgb.relative_to(self.root).as_posix())[: -len(".png")]
            entries.append((stem + ".png", stem + "_depth.npy", stem + "_depth_mask.npy"))
        return entries

    def read_depth(self, entry, rgb_shape):
        depth = _load_npy(self.root / entry[1])
        mask = _load_npy(self.root / entry[2])
        depth = depth[..., 0] if depth.ndim == 3 and depth.shape[-1] == 1 else depth
        if depth.shape != tuple(rgb_shape):
            raise DatasetError(f"{self.root / entry[1]}: depth is {depth.shape}, its image is {tuple(rgb_shape)}")
        if mask.shape != depth.shape:
            raise DatasetError(f"{self.root / entry[2]}: mask is {mask.shape}, the depth is {depth.shape}")
        return depth.astype(np.float32), mask.astype(bool)

    def category(self, entry):
        return entry[0].split("/")[-4]  # indoors / outdoor
