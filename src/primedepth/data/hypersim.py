"""Hypersim (Roberts et al. 2021) in its released file format, as Marigold / PrimeDepth train on it.

Layout (the official download)::

    ROOT/ai_001_010/images/scene_cam_00_final_hdf5/frame.0000.color.hdf5          HDR linear RGB, float16 (H, W, 3)
    ROOT/ai_001_010/images/scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5  distance to the camera centre (m)
    ROOT/ai_001_010/images/scene_cam_00_geometry_hdf5/frame.0000.semantic.hdf5      NYU40 ids, -1 = unlabelled
    ROOT/ai_001_010/images/scene_cam_00_geometry_hdf5/frame.0000.render_entity_id.hdf5  -1 = no geometry
    ROOT/metadata_images_split_scene_v1.csv          official split (scene_name, camera_name, frame_id,
                                                     included_in_public_release, exclude_reason, split_partition_name)
    ROOT/metadata_camera_parameters.csv              optional, per-scene M_cam_from_uv_ij (tilt-shift cameras)

Each HDF5 file holds one array named ``dataset``. Which frames: ``file_list`` (Marigold's filtered split, lines like
``train/ai_001_010/rgb_cam_00_fr0000.png ...``), else the official split CSV (public, not excluded, ``split``
partition), else every frame found. Ray distance becomes planar depth with the scene's camera (``M_cam_from_uv``
when the camera CSV has the scene, else the standard 886.81 px focal at 1024 px width); HDR becomes sRGB with
Hypersim's own tone mapping (90th-percentile brightness -> 0.8, gamma 2.2). Reading HDF5 needs ``h5py``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from ..constants import IGNORE_LABEL
from ..utils.json_files import read_json
from .common import DataError, RawSample

DEFAULT_FOCAL_1024 = 886.81  # Hypersim's standard camera: 60 degree horizontal FOV at 1024 px

# NYU40 (1-based) -> ADE20K-150 (0-based); unmapped classes are unlabelled
NYU40_TO_ADE = {
    1: 0,
    2: 3,
    3: 10,
    4: 7,
    5: 19,
    6: 23,
    7: 15,
    8: 14,
    9: 8,
    10: 62,
    11: 22,
    12: 45,
    13: 63,
    14: 33,
    15: 24,
    16: 18,
    17: 44,
    18: 57,
    19: 27,
    20: 28,
    21: 92,
    22: 5,
    23: 67,
    24: 50,
    25: 89,
    27: 81,
    28: 18,
    29: 41,
    30: 144,
    31: 12,
    32: 44,
    33: 65,
    34: 47,
    35: 36,
    36: 37,
    37: 115,
}
_NYU_LUT = np.full(256, IGNORE_LABEL, np.uint8)
for _nyu, _ade in NYU40_TO_ADE.items():
    _NYU_LUT[_nyu] = _ade


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading Hypersim's HDF5 files needs h5py: pip install h5py") from None
    return h5py


def read_hdf5(path: Path) -> np.ndarray:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as fh:
            if "dataset" not in fh:
                raise DataError(f"{path}: no 'dataset' array in this HDF5 file (keys: {list(fh.keys())})")
            return fh["dataset"][()]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file ({err})") from None


def tone_map(rgb: np.ndarray, entity_id: np.ndarray | None) -> np.ndarray:
    """Hypersim's ``scene_generate_images_tonemap.py``: scale so the 90th-percentile brightness of valid pixels maps
    to 0.8 after gamma 1/2.2; returns uint8 sRGB."""
    rgb = rgb.astype(np.float64)
    gamma, percentile, desired = 1.0 / 2.2, 90, 0.8
    valid = np.ones(rgb.shape[:2], bool) if entity_id is None else entity_id != -1
    valid &= np.isfinite(rgb).all(-1)
    if not valid.any():
        scale = 1.0
    else:
        brightness = 0.3 * rgb[..., 0] + 0.59 * rgb[..., 1] + 0.11 * rgb[..., 2]
        current = np.percentile(brightness[valid], percentile)
        scale = 0.0 if current < 1e-4 else np.power(desired, 1.0 / gamma) / current
    out = np.power(np.maximum(scale * np.nan_to_num(rgb), 0), gamma)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def ray_to_planar(distance: np.ndarray, m_cam_from_uv: np.ndarray | None = None) -> np.ndarray:
    """Planar depth (along the optical axis) from distance to the camera centre."""
    h, w = distance.shape
    if m_cam_from_uv is None:
        tan_x = (w / 2) / (DEFAULT_FOCAL_1024 * w / 1024)
        m_cam_from_uv = np.diag([tan_x, tan_x * h / w, -1.0])
    u = np.linspace(-1 + 1 / w, 1 - 1 / w, w)
    v = np.linspace(-1 + 1 / h, 1 - 1 / h, h)[::-1]
    uu, vv = np.meshgrid(u, v)
    uv1 = np.stack([uu, vv, np.ones_like(uu)], -1)
    rays = uv1 @ np.asarray(m_cam_from_uv, np.float64).T
    cos = np.abs(rays[..., 2]) / np.linalg.norm(rays, axis=-1)
    return (distance.astype(np.float64) * cos).astype(np.float32)


def _read_camera_csv(path: Path) -> dict[str, np.ndarray]:
    cams = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                cams[row["scene_name"]] = np.array(
                    [[float(row[f"M_cam_from_uv_{i}{j}"]) for j in range(3)] for i in range(3)]
                )
            except (KeyError, ValueError) as err:
                raise DataError(f"{path}: bad camera row for {row.get('scene_name')!r} ({err})") from None
    return cams


_MARIGOLD_RE = re.compile(r"(ai_\d+_\d+)/rgb_cam_(\d+)_fr(\d+)")


class HypersimDataset:
    def __init__(
        self,
        root: str,
        split: str = "train",
        file_list: str | None = None,
        captions: str | None = None,
        camera_csv: str | None = None,
        limit: int | None = None,
        max_depth: float = 65.0,
    ):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: Hypersim root folder not found")
        self.max_depth = max_depth
        self.frames = self._select(split, file_list)
        if limit:
            self.frames = self.frames[: int(limit)]
        if not self.frames:
            raise DataError(f"{self.root}: no Hypersim frames found for split {split!r}")
        cam_path = Path(camera_csv) if camera_csv else self.root / "metadata_camera_parameters.csv"
        self.cameras = _read_camera_csv(cam_path) if cam_path.is_file() else {}
        self.captions = _load_captions(captions, [self.key(i) for i in range(len(self.frames))])

    def _select(self, split, file_list) -> list[tuple[str, str, int]]:
        if file_list:
            path = Path(file_list)
            try:
                lines = path.read_text().splitlines()
            except FileNotFoundError:
                raise DataError(f"{path}: Hypersim file list not found") from None
            frames = []
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                m = _MARIGOLD_RE.search(line)
                if not m:
                    raise DataError(f"{path}:{n}: expected '<scene>/rgb_cam_<NN>_fr<NNNN>.png', got {line!r}")
                frames.append((m.group(1), f"cam_{m.group(2)}", int(m.group(3))))
            return frames
        split_csv = self.root / "metadata_images_split_scene_v1.csv"
        if split_csv.is_file():
            frames = []
            with open(split_csv, newline="") as fh:
                for row in csv.DictReader(fh):
                    if row.get("split_partition_name") != split:
                        continue
                    if str(row.get("included_in_public_release", "True")).lower() != "true":
                        continue
                    if row.get("exclude_reason", "") not in ("", "nan", "None"):
                        continue
                    frames.append((row["scene_name"], row["camera_name"], int(row["frame_id"])))
            return frames
        frames = []
        for color in sorted(self.root.glob("ai_*/images/scene_cam_*_final_hdf5/frame.*.color.hdf5")):
            cam = color.parent.name[len("scene_") : -len("_final_hdf5")]
            frames.append((color.parents[2].name, cam, int(color.name.split(".")[1])))
        return frames

    def __len__(self):
        return len(self.frames)

    def key(self, index: int) -> str:
        scene, cam, frame = self.frames[index]
        return f"{scene}/{cam}/{frame:04d}"

    def paths(self, index: int) -> dict[str, Path]:
        scene, cam, frame = self.frames[index]
        images = self.root / scene / "images"
        geo = images / f"scene_{cam}_geometry_hdf5"
        return {
            "color": images / f"scene_{cam}_final_hdf5" / f"frame.{frame:04d}.color.hdf5",
            "depth": geo / f"frame.{frame:04d}.depth_meters.hdf5",
            "semantic": geo / f"frame.{frame:04d}.semantic.hdf5",
            "entity": geo / f"frame.{frame:04d}.render_entity_id.hdf5",
        }

    def __getitem__(self, index: int) -> RawSample:
        p = self.paths(index)
        scene = self.frames[index][0]
        hdr = read_hdf5(p["color"])
        distance = read_hdf5(p["depth"]).astype(np.float32)
        if hdr.ndim != 3 or hdr.shape[2] != 3 or distance.shape != hdr.shape[:2]:
            raise DataError(f"{p['color']}: colour {hdr.shape} and depth {distance.shape} do not match")
        entity = read_hdf5(p["entity"]) if p["entity"].is_file() else None
        image = tone_map(hdr, entity)
        depth = ray_to_planar(distance, self.cameras.get(scene))
        valid = np.isfinite(depth) & (depth > 1e-5) & (depth < self.max_depth)
        if entity is not None:
            valid &= entity != -1
        labels = None
        if p["semantic"].is_file():
            sem = read_hdf5(p["semantic"]).astype(np.int64)
            labels = np.where((sem >= 0) & (sem < 256), _NYU_LUT[np.clip(sem, 0, 255)], IGNORE_LABEL).astype(np.uint8)
        return RawSample(
            image,
            np.nan_to_num(depth, nan=0.0),
            valid,
            labels,
            self.captions.get(self.key(index), ""),
            "depth",
            str(p["color"]),
        )


def _load_captions(path: str | None, keys: list[str]) -> dict[str, str]:
    """A JSON object key -> caption (``primedepth pseudo-label --captions-only`` writes one). Missing keys are an
    error naming the file, so a run never trains half its images on empty prompts by accident."""
    if not path:
        return {}
    path = Path(path)
    captions = read_json(path, "captions file", DataError)
    missing = [k for k in keys if k not in captions]
    if missing:
        raise DataError(f"{path}: no caption for {len(missing)} of {len(keys)} images (first: {missing[0]!r})")
    return captions
