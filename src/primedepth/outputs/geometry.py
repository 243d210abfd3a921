"""From a depth map to 3D: pinhole intrinsics, a coloured point cloud (PLY) and a mesh without edges across depth
discontinuities (GLB), in camera coordinates, written through trimesh.

Camera coordinates are OpenCV's: x right, y down, z forward (depth along the optical axis), in the depth's unit.
Intrinsics come, in this order, from a focal length in pixels, a field of view, the image's EXIF 35 mm-equivalent
focal length, or ``DEFAULT_FOV_DEG`` across the long side; the source is always reported.

The model predicts affine-invariant inverse depth, which has no 3D meaning by itself: ``depth_from_range`` states
an assumption (the nearest and farthest depths), the metric alignment (``outputs.alignment``) measures one.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from .colour import value_range

DEFAULT_FOV_DEG = 60.0
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
EXIF_IFD, EXIF_FOCAL_35MM = 0x8769, 0xA405
MAX_EDGE_RATIO = 1.08  # a triangle whose farthest corner is > 8 % deeper than its nearest spans a discontinuity


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera: focal lengths and principal point in pixels, and where the focal length came from."""

    fx: float
    fy: float
    cx: float
    cy: float
    source: str

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


def exif_focal_35mm(path: str | Path) -> float | None:
    """The EXIF ``FocalLengthIn35mmFilm`` (mm) of an image file, or None when absent or unreadable."""
    try:
        with Image.open(path) as image:
            value = image.getexif().get_ifd(EXIF_IFD).get(EXIF_FOCAL_35MM)
    except (OSError, ValueError, SyntaxError):
        return None
    return float(value) if value else None


def check_camera(focal_px: float | None = None, fov_deg: float | None = None) -> None:
    """Raise ValueError unless the given focal length (pixels) is finite and positive and the field of view
    (degrees) finite and inside (0, 180)."""
    if focal_px is not None and not (math.isfinite(focal_px) and focal_px > 0):
        raise ValueError(f"focal length must be a finite number of pixels > 0, got {focal_px}")
    if fov_deg is not None and not (math.isfinite(fov_deg) and 0 < fov_deg < 180):
        raise ValueError(f"field of view must lie in (0, 180) degrees, got {fov_deg}")


def intrinsics_for(
    height: int,
    width: int,
    *,
    focal_px: float | None = None,
    fov_deg: float | None = None,
    image_path: str | Path | None = None,
    estimate: tuple[float, str] | None = None,
) -> Intrinsics:
    """Intrinsics for an H x W image: ``focal_px``, else ``fov_deg`` (across the long side), else the EXIF
    35 mm-equivalent focal length of ``image_path`` (scaled by the diagonal), else a model's ``estimate``
    (focal length in pixels, what estimated it), else ``DEFAULT_FOV_DEG``."""
    check_camera(focal_px, fov_deg)
    cx, cy = width / 2.0, height / 2.0
    if focal_px is not None:
        return Intrinsics(focal_px, focal_px, cx, cy, f"--focal-px {focal_px:g}")
    long_side = max(height, width)
    if fov_deg is not None:
        f = 0.5 * long_side / math.tan(math.radians(fov_deg) / 2)
        return Intrinsics(f, f, cx, cy, f"--fov {fov_deg:g} deg")
    focal_35 = exif_focal_35mm(image_path) if image_path is not None and Path(image_path).is_file() else None
    if focal_35:
        f = focal_35 * math.hypot(height, width) / FULL_FRAME_DIAGONAL_MM
        return Intrinsics(f, f, cx, cy, f"EXIF 35 mm-equivalent focal length {focal_35:g} mm")
    if estimate is not None and estimate[0] > 0:
        return Intrinsics(estimate[0], estimate[0], cx, cy, estimate[1])
    f = 0.5 * long_side / math.tan(math.radians(DEFAULT_FOV_DEG) / 2)
    return Intrinsics(f, f, cx, cy, f"assumed {DEFAULT_FOV_DEG:g} deg field of view (no --focal-px, --fov or EXIF)")


def depth_from_range(inverse_depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """Depth under the stated assumption that the map's extremes are at ``near`` and ``far``: the inverse depth is
    mapped affinely onto disparities [1/far, 1/near] (it is affine in disparity) and inverted. float32."""
    if not 0 < near < far:
        raise ValueError(f"depth range needs 0 < NEAR < FAR, got {near}, {far}")
    lo, hi = value_range(inverse_depth)
    t = (inverse_depth.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo if hi > lo else 1.0)
    disparity = np.float32(1.0 / far) + t * np.float32(1.0 / near - 1.0 / far)
    return (1.0 / disparity).astype(np.float32)


def backproject(depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """(H*W, 3) float32 camera-space points of every pixel centre (row-major)."""
    h, w = depth.shape
    u = (np.arange(w, dtype=np.float32) + 0.5 - intrinsics.cx) / intrinsics.fx
    v = (np.arange(h, dtype=np.float32) + 0.5 - intrinsics.cy) / intrinsics.fy
    z = depth.astype(np.float32)
    return np.stack([z * u[None, :], z * v[:, None], z], axis=-1).reshape(-1, 3)


def _rgba(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    alpha = np.full((*rgb.shape[:2], 1), 255, dtype=np.uint8)
    return np.concatenate([rgb[..., :3], alpha], axis=-1).reshape(-1, 4)


def point_cloud(depth: np.ndarray, rgb: np.ndarray, intrinsics: Intrinsics) -> trimesh.PointCloud:
    """One coloured point per pixel with finite positive depth (``rgb``: H x W x 3 uint8 or float in [0, 1])."""
    keep = (np.isfinite(depth) & (depth > 0)).reshape(-1)
    return trimesh.PointCloud(backproject(depth, intrinsics)[keep], colors=_rgba(rgb)[keep])


def mesh(
    depth: np.ndarray, rgb: np.ndarray, intrinsics: Intrinsics, max_edge_ratio: float = MAX_EDGE_RATIO
) -> trimesh.Trimesh:
    """A vertex-coloured triangle mesh over the pixel grid: two triangles per 2 x 2 pixel cell, dropped where the
    depth ratio of the corners exceeds ``max_edge_ratio`` (a discontinuity, not a surface) or a corner is invalid.
    Unused vertices are removed, so the mesh has at most H x W vertices."""
    h, w = depth.shape
    z = depth.astype(np.float32)
    index = np.arange(h * w).reshape(h, w)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    corner = z.reshape(-1)[faces]
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(corner).all(1) & (corner.min(1) > 0) & (corner.max(1) <= max_edge_ratio * corner.min(1))
    result = trimesh.Trimesh(
        vertices=backproject(depth, intrinsics), faces=faces[ok], vertex_colors=_rgba(rgb), process=False
    )
    result.remove_unreferenced_vertices()
    return result


def ply_bytes(cloud: trimesh.PointCloud) -> bytes:
    """Binary PLY with per-vertex RGBA colours."""
    return cloud.export(file_type="ply")


def glb_bytes(surface: trimesh.Trimesh) -> bytes:
    """Binary glTF (GLB) with vertex colours."""
    buf = io.BytesIO()
    surface.export(buf, file_type="glb")
    return buf.getvalue()
