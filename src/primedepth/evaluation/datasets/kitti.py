"""KITTI, Eigen test split with ground truth (652 of the 697 Eigen test frames have projected GT). Layout as in
the KITTI raw + depth-benchmark releases: ``<date>/<drive>/image_02/data/<frame>.png`` and
``<drive>/proj_depth/groundtruth/image_02/<frame>.png`` (uint16, metres x 256). Frames without GT are not part of
the split; RGB and GT are cropped to the 352x1216 benchmark box and scored inside the Garg/Eigen crop."""

from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np

from .base import DepthDataset, read_png_depth


def gt_path(rgb_rel: str) -> str:
    parts = PurePosixPath(rgb_rel).parts  # date, drive, image_02, data, frame
    return str(PurePosixPath(parts[1], "proj_depth", "groundtruth", parts[2], parts[4]))


class KITTIDataset(DepthDataset):
    config_name = "kitti"

    def discover(self):
        entries = []
        for rgb in sorted(self.root.glob("*/*_sync/image_02/data/*.png")):
            rel = str(rgb.relative_to(self.root).as_posix())
            if (self.root / gt_path(rel)).is_file():
                entries.append((rel, gt_path(rel)))
        return entries

    def read_depth(self, entry, rgb_shape):
        depth = read_png_depth(self.root / entry[1], 256.0)
        return depth, np.ones(depth.shape, dtype=bool)
