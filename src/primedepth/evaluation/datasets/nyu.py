"""NYUv2, Eigen test split (654 images) in Marigold's extracted layout: ``test/<scene>/rgb_XXXX.png`` with the raw
(not in-painted) depth ``depth_XXXX.png`` in millimetres. Scored inside the Eigen crop at native resolution."""

from __future__ import annotations

import numpy as np

from .base import DepthDataset, read_png_depth


class NYUDataset(DepthDataset):
    config_name = "nyu"

    def discover(self):
        entries = []
        for rgb in sorted(self.root.glob("test/*/rgb_*.png")):
            depth = rgb.with_name(rgb.name.replace("rgb_", "depth_"))
            entries.append((str(rgb.relative_to(self.root)), str(depth.relative_to(self.root))))
        return entries

    def read_depth(self, entry, rgb_shape):
        depth = read_png_depth(self.root / entry[1], 1000.0)
        return depth, np.ones(depth.shape, dtype=bool)
