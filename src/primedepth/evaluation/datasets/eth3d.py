"""ETH3D high-res multi-view, DSLR images with ground truth (454). Layout of the ETH3D downloads as Marigold uses
them: ``rgb/<scene>/images/dslr_images/DSC_x.JPG`` and the GT ``depth/<scene>_dslr_depth/<scene>/ground_truth_depth/
dslr_images/DSC_x.JPG`` which, despite the name, is raw little-endian float32 at the image resolution, inf = no GT."""

from __future__ import annotations

import numpy as np

from .base import DatasetError, DepthDataset


class ETH3DDataset(DepthDataset):
    config_name = "eth3d"

    def discover(self):
        entries = []
        for rgb in sorted(self.root.glob("rgb/*/images/dslr_images/*.JPG")):
            scene = rgb.parts[-4]
            depth = (
                self.root / "depth" / f"{scene}_dslr_depth" / scene / "ground_truth_depth" / "dslr_images" / rgb.name
            )
            entries.append((str(rgb.relative_to(self.root).as_posix()), str(depth.relative_to(self.root).as_posix())))
        return entries

    def read_depth(self, entry, rgb_shape):
        path = self.root / entry[1]
        if not path.is_file():
            raise DatasetError(f"{path}: depth map does not exist")
        raw = np.fromfile(path, dtype="<f4")
        h, w = rgb_shape
        if raw.size != h * w:
            raise DatasetError(f"{path}: holds {raw.size} float32 values, its image needs {h}x{w} = {h * w}")
        depth = raw.reshape(h, w).copy()
        valid = np.isfinite(depth)
        depth[~valid] = 0.0
        return depth, valid
