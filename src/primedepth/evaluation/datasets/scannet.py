"""ScanNet v2 validation, 800 frames sampled as in Marigold (``scannet_val_sampled_list_800_1``). Layout of the
exported frames: ``<scene>/color/<n>.jpg`` and ``<scene>/depth/<n>.png`` (uint16 millimetres, RGB at depth size)."""

from __future__ import annotations

import numpy as np

from .base import DepthDataset, read_png_depth


class ScanNetDataset(DepthDataset):
    config_name = "scannet"

    def discover(self):
        entries = []
        for rgb in sorted(self.root.glob("scene*/color/*.jpg")):
            depth = rgb.parent.parent / "depth" / (rgb.stem + ".png")
            entries.append((str(rgb.relative_to(self.root).as_posix()), str(depth.relative_to(self.root).as_posix())))
        return entries

    def read_depth(self, entry, rgb_shape):
        depth = read_png_depth(self.root / entry[1], 1000.0)
        return depth, np.ones(depth.shape, dtype=bool)
