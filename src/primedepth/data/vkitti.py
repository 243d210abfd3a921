"""Virtual KITTI 2 (Cabon et al. 2020) in its released file format, with the KITTI benchmark crop.

Layout::

    ROOT/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg
    ROOT/Scene01/clone/frames/depth/Camera_0/depth_00000.png               uint16, centimetres (65535 = sky)
    ROOT/Scene01/clone/frames/classSegmentation/Camera_0/classgt_00000.png  RGB class colours (colors.txt)

Depth is cropped to KITTI's benchmark region (bottom 352 rows, central 1216 columns, as Marigold does) and
masked outside (min_depth, max_depth] (default 80 m, which also drops the sky).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..constants import IGNORE_LABEL
from .common import DataError, RawSample, read_image
from .hypersim import _load_captions

KB_CROP = (352, 1216)
# vKITTI 2 class colours -> ADE20K-150 indices
CLASS_COLOURS = {
    "Terrain": ((210, 0, 200), 13),
    "Sky": ((90, 200, 255), 2),
    "Tree": ((0, 199, 0), 4),
    "Vegetation": ((90, 240, 0), 17),
    "Building": ((140, 140, 140), 1),
    "Road": ((100, 60, 100), 6),
    "GuardRail": ((250, 100, 255), 38),
    "TrafficSign": ((255, 255, 0), 43),
    "TrafficLight": ((200, 200, 0), 136),
    "Pole": ((255, 130, 0), 93),
    "Misc": ((80, 80, 80), IGNORE_LABEL),
    "Truck": ((160, 60, 60), 83),
    "Car": ((255, 127, 80), 20),
    "Van": ((0, 139, 139), 102),
    "Undefined": ((0, 0, 0), IGNORE_LABEL),
}


def kb_crop(array: np.ndarray) -> np.ndarray:
    h, w = array.shape[:2]
    th, tw = KB_CROP
    if h < th or w < tw:
        return array
    top, left = h - th, (w - tw) // 2
    return array[top : top + th, left : left + tw]


def colours_to_ade(seg: np.ndarray) -> np.ndarray:
    code = (seg[..., 0].astype(np.int64) << 16) | (seg[..., 1].astype(np.int64) << 8) | seg[..., 2]
    out = np.full(seg.shape[:2], IGNORE_LABEL, np.uint8)
    for (r, g, b), ade in CLASS_COLOURS.values():
        out[code == ((r << 16) | (g << 8) | b)] = ade
    return out


class VKITTI2Dataset:
    def __init__(
        self,
        root: str,
        scenes: list[str] | None = None,
        variations: list[str] | None = None,
        cameras: tuple[str, ...] = ("Camera_0",),
        captions: str | None = None,
        crop: bool = True,
        min_depth: float = 1e-5,
        max_depth: float = 80.0,
        limit: int | None = None,
    ):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: Virtual KITTI 2 root folder not found")
        self.crop, self.min_depth, self.max_depth = crop, min_depth, max_depth
        frames = []
        for scene in sorted(p for p in self.root.glob("Scene*") if p.is_dir()):
            if scenes and scene.name not in scenes:
                continue
            for var in sorted(p for p in scene.iterdir() if p.is_dir()):
                if variations and var.name not in variations:
                    continue
                for cam in cameras:
                    for rgb in sorted((var / "frames" / "rgb" / cam).glob("rgb_*.jpg")):
                        frames.append(rgb)
        if limit:
            frames = frames[: int(limit)]
        if not frames:
            raise DataError(f"{self.root}: no frames found (expected Scene*/<variation>/frames/rgb/Camera_0/rgb_*.jpg)")
        self.frames = frames
        self.captions = _load_captions(captions, [self.key(i) for i in range(len(frames))])

    def __len__(self):
        return len(self.frames)

    def key(self, index: int) -> str:
        return self.frames[index].relative_to(self.root).as_posix()

    def __getitem__(self, index: int) -> RawSample:
        rgb_path = self.frames[index]
        number = rgb_path.stem.split("_")[-1]
        frames_dir, cam = rgb_path.parents[2], rgb_path.parent.name
        depth_path = frames_dir / "depth" / cam / f"depth_{number}.png"
        seg_path = frames_dir / "classSegmentation" / cam / f"classgt_{number}.png"
        image = read_image(rgb_path)
        try:
            with Image.open(depth_path) as im:
                raw = np.asarray(im)
        except FileNotFoundError:
            raise DataError(f"{depth_path}: depth file not found") from None
        if raw.dtype != np.uint16 and raw.dtype != np.int32:
            raise DataError(f"{depth_path}: expected a 16-bit PNG (centimetres), got {raw.dtype}")
        depth = raw.astype(np.float32) / 100.0
        if depth.shape != image.shape[:2]:
            raise DataError(f"{depth_path}: size {depth.shape} differs from {rgb_path} {image.shape[:2]}")
        labels = colours_to_ade(read_image(seg_path)) if seg_path.is_file() else None
        if self.crop:
            image, depth = kb_crop(image), kb_crop(depth)
            labels = kb_crop(labels) if labels is not None else None
        valid = (depth > self.min_depth) & (depth <= self.max_depth)
        return RawSample(
            np.ascontiguousarray(image),
            np.ascontiguousarray(depth),
            valid,
            None if labels is None else np.ascontiguousarray(labels),
            self.captions.get(self.key(index), ""),
            "depth",
            str(rgb_path),
        )
