"""Turning one prediction into the extra files a user asked for (grey and side-by-side images, float maps, metric
depth, point cloud, mesh), with the depth they need made explicit: measured (``align_to``), fused with a metric
prior (``metric``), assumed (``depth_range``) or, when none is given, refused -- never invented silently."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..utils.atomic import atomic_write
from ..utils.images import uint8_rgb
from .alignment import SPARSE_SUFFIXES, align_to_metric, read_sparse_depth
from .colour import DEFAULT_CMAP, grey, side_by_side
from .formats import (
    FLOAT_FORMATS,
    METRIC_FORMATS,
    NEEDS_DEPTH,
    OUTPUT_KINDS,
    grey_png_bytes,
    openexr,
    pfm_bytes,
    tiff_bytes,
    write_exr,
)
from .geometry import check_camera, depth_from_range, glb_bytes, intrinsics_for, mesh, ply_bytes, point_cloud
from .writers import _png_bytes, npy_bytes


@dataclass
class OutputOptions:
    """How to render products: colour map, what float files hold, where depth comes from, the camera."""

    cmap: str = DEFAULT_CMAP
    output_kind: str = "inverse-depth"
    depth_range: tuple[float, float] | None = None  # assumed (nearest, farthest) depth in metres
    align_to: Path | None = None  # sparse metric depths: one file, or a folder of STEM.npy / .png / .csv
    focal_px: float | None = None
    fov_deg: float | None = None
    metric: str | None = None  # a metric prior spec (pipelines.metric): depth fused with it

    def check(self, formats: list[str]) -> None:
        """Raise ValueError when the formats need depth and nothing provides it, or an option is invalid
        (ImportError when EXR is asked for without OpenEXR installed)."""
        if "exr" in formats:
            openexr()
        if self.output_kind not in OUTPUT_KINDS:
            raise ValueError(f"output kind must be one of {OUTPUT_KINDS}, got {self.output_kind!r}")
        needs = [f for f in formats if f in NEEDS_DEPTH]
        if self.output_kind == "depth" and any(f in FLOAT_FORMATS for f in formats):
            needs.append("--output-kind depth")
        if needs and self.align_to is None and self.depth_range is None and self.metric is None:
            raise ValueError(
                f"{', '.join(needs)} need(s) depth, but the prediction is affine-invariant inverse "
                "depth: give --metric PRIOR, --align-to FILE (sparse metric depths) or state --depth-range NEAR,FAR"
            )
        metric_only = [f for f in formats if f in METRIC_FORMATS]
        if metric_only and self.metric is None:
            raise ValueError(f"{', '.join(metric_only)} need(s) --metric PRIOR")
        if self.depth_range is not None and not 0 < self.depth_range[0] < self.depth_range[1] < math.inf:
            raise ValueError(f"depth range needs 0 < NEAR < FAR (finite), got {self.depth_range}")
        check_camera(self.focal_px, self.fov_deg)

    def sparse_file(self, stem: Path) -> Path | None:
        """The sparse-depth file for the output ``stem`` (the file itself, or ``FOLDER/STEM.{npy,png,csv}``)."""
        if self.align_to is None or not self.align_to.is_dir():
            return self.align_to
        for suffix in SPARSE_SUFFIXES:
            candidate = self.align_to / stem.with_suffix(suffix)
            if candidate.is_file():
                return candidate
        return None


def _rgb_at(pixels, shape: tuple[int, int]) -> np.ndarray:
    """uint8 H x W x 3 of a (3, h, w) [0, 1] tensor, resized to ``shape`` when the prediction has another size."""
    rgb = uint8_rgb(pixels)
    if rgb.shape[:2] != shape:
        rgb = np.asarray(Image.fromarray(rgb).resize((shape[1], shape[0]), Image.BILINEAR))
    return rgb


def product_writers(
    formats: list[str],
    inverse_depth: np.ndarray,
    image,
    options: OutputOptions,
    sparse_path: Path | None = None,
    metric=None,
    metadata: dict | None = None,
) -> tuple[dict[str, Callable[[Path], None]], list[str]]:
    """Writers (format -> write(path), atomic) for the requested product formats, and notes for the user (the
    alignment's fit, the assumed depth range, the intrinsics' source). ``image`` is the ``LoadedImage``;
    ``metric`` the image's ``pipelines.metric.MetricResult`` (its depth and camera are then used), ``metadata``
    extra entries of the metric JSON (e.g. the licences).

    Raises ``SparseDepthError`` for an unusable sparse-depth file."""
    notes, depth = [], None
    wanted = set(formats)
    needs_depth = bool(wanted & set(NEEDS_DEPTH)) or (options.output_kind == "depth" and wanted & set(FLOAT_FORMATS))
    if needs_depth or (sparse_path is not None and "depth" in wanted) or metric is not None:
        if metric is not None:
            depth = metric.depth
            notes.append(metric.summary())
        elif sparse_path is not None:
            alignment = align_to_metric(inverse_depth, read_sparse_depth(sparse_path, inverse_depth.shape))
            depth = alignment.depth
            notes.append(f"{sparse_path.name}: {alignment.summary()}")
        elif options.depth_range is not None:
            near, far = options.depth_range
            depth = depth_from_range(inverse_depth, near, far)
            notes.append(f"depth assumed to span {near:g}-{far:g} m (--depth-range), not measured")
        else:
            raise ValueError("depth needed but neither sparse metric depths nor --depth-range are given")
    floats = depth if options.output_kind == "depth" else inverse_depth
    kind = options.output_kind

    def bytes_writer(make: Callable[[], bytes]) -> Callable[[Path], None]:
        return lambda path: atomic_write(path, make())

    rgb = _rgb_at(image.pixels, inverse_depth.shape) if wanted & {"side", "ply", "glb"} else None
    writers: dict[str, Callable[[Path], None]] = {
        "grey": bytes_writer(lambda: grey_png_bytes(inverse_depth)),
        "side": bytes_writer(lambda: _png_bytes(Image.fromarray(side_by_side(rgb, inverse_depth, options.cmap)))),
        "tiff": bytes_writer(lambda: tiff_bytes(floats, kind)),
        "exr": lambda path: write_exr(path, floats, kind),
        "pfm": bytes_writer(lambda: pfm_bytes(floats)),
    }
    if depth is not None:
        writers["depth"] = bytes_writer(lambda: npy_bytes(depth))
    if metric is not None:
        writers["confidence"] = bytes_writer(lambda: _png_bytes(Image.fromarray(grey(metric.confidence, 0.0, 1.0))))
        writers["confidence-npy"] = bytes_writer(lambda: npy_bytes(metric.confidence))
        writers["residual"] = bytes_writer(lambda: npy_bytes(metric.residual))
        writers["metric-json"] = bytes_writer(
            lambda: json.dumps({**metric.metadata(), **(metadata or {})}, indent=2).encode()
        )
    if wanted & {"ply", "glb"}:
        if metric is not None:
            intrinsics = metric.intrinsics
        else:
            intrinsics = intrinsics_for(
                *inverse_depth.shape, focal_px=options.focal_px, fov_deg=options.fov_deg, image_path=image.source
            )
            notes.append(f"camera: fx = fy = {intrinsics.fx:.1f} px from {intrinsics.source}")
        writers["ply"] = bytes_writer(lambda: ply_bytes(point_cloud(depth, rgb, intrinsics)))
        writers["glb"] = bytes_writer(lambda: glb_bytes(mesh(depth, rgb, intrinsics)))
    return {f: writers[f] for f in formats if f in writers}, notes
