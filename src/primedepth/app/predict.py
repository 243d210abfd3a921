"""One image through the pipeline and the package's writers, for the app: the same loader, pipeline call and output
files as ``primedepth predict`` (npy, 16-bit PNG, colour map, RGB | depth, PLY point cloud, GLB mesh), written into a
fresh folder under the app's own temporary folder, plus the honest account of what ran."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..outputs.geometry import glb_bytes
from ..outputs.products import OutputOptions, product_writers
from ..pipelines.export import output_path, write_prediction
from ..pipelines.image_processor import load_image
from ..utils.atomic import atomic_write
from .models import ModelRegistry

DOWNLOAD_FORMATS = ["npy", "png16", "color", "side", "ply", "glb"]
DEFAULT_DEPTH_RANGE = (1.0, 10.0)
MAX_VIEW_PIXELS = 1_000_000  # larger meshes are offered as downloads only: a browser would struggle to show them
# The GLB writer uses camera coordinates (x right, y down, z forward); the page's viewer is y up, looking along -z.
VIEWER_FROM_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])


class InputRejected(ValueError):
    """An upload the app refuses (too large, unreadable, bad option); the message is shown in the page."""


@dataclass
class ImageResult:
    color: Path  # colour depth map at the input's size (near = warm)
    downloads: list[Path]  # every written file, in DOWNLOAD_FORMATS order
    label: str  # model, device, sizes, time, caption, assumptions and the model's caveat
    rgb: np.ndarray  # the input as the pipeline read it (uint8 H x W x 3), for the RGB | depth slider
    view_glb: Path | None  # the GLB mesh turned for the page's 3D viewer (None when the image is too large)


def check_pixels(path: str | Path, max_pixels: int, name: str) -> None:
    """Refuse images over ``max_pixels`` from their header alone, before anything decodes them (a small file can
    hold a huge image). Files PIL cannot identify pass: the loader names their problem."""
    try:
        with Image.open(path) as opened:
            w, h = opened.size
    except (OSError, ValueError, SyntaxError):
        return
    if w * h > max_pixels:
        raise InputRejected(
            f"{name}: {w} x {h} pixels is over this app's limit of {max_pixels:,} pixels "
            "(start it with a larger --max-pixels, or use `primedepth predict`)"
        )


def caption_argument(mode: str, text: str) -> str:
    """The pipeline's ``caption`` from the page's caption mode (none / auto / text) and text box."""
    if mode == "text":
        if not text.strip():
            raise InputRejected("caption mode 'text' needs a caption text")
        return text.strip()
    if mode not in ("none", "auto"):
        raise InputRejected(f"unknown caption mode {mode!r}")
    return mode


def predict_image(
    registry: ModelRegistry,
    path: str | Path,
    *,
    model: str,
    caption_mode: str = "none",
    caption_text: str = "",
    max_size: int = 0,
    depth_range: tuple[float, float] = DEFAULT_DEPTH_RANGE,
    workdir: Path,
    max_pixels: int,
    name: str | None = None,
    seed: int = 0,
    ensemble: bool = False,
    tiles: str | int = "auto",
) -> ImageResult:
    """Depth for the image file ``path`` with model ``model``; ``max_size`` 0 means the model's own processing size;
    ``depth_range`` is the assumed (nearest, farthest) depth in metres that turns the affine-invariant prediction
    into the 3D files; ``ensemble`` averages with the registry's Depth Anything member; ``tiles`` (``"auto"``,
    ``"off"`` or a number) adds detail at the input's resolution from tiles (``PrimeDepthPipeline.__call__``).
    Raises ``InputRejected`` (bad input or option), ``ImageLoadError`` (not an image), ``OSError`` (weights or a
    caption model that cannot be loaded) or the pipeline's ``ValueError`` / ``RuntimeError``."""
    name = name or Path(path).name
    choice = registry.choice(model)
    member = registry.ensemble_member if ensemble else None
    if ensemble and member is None:
        raise InputRejected("this app has no Depth Anything weights for the ensemble (start it with --ensemble)")
    caption = caption_argument(caption_mode, caption_text)
    if max_size < 0:
        raise InputRejected(f"processing size must be 0 (the model's own) or positive, got {max_size}")
    options = OutputOptions(depth_range=tuple(float(v) for v in depth_range))
    options.check(DOWNLOAD_FORMATS)
    check_pixels(path, max_pixels, name)
    image = load_image(path, name=name)
    stem = workdir / "results" / uuid.uuid4().hex / Path(name).stem
    stem.parent.mkdir(parents=True)

    def work(pipe):
        start = time.perf_counter()
        out = pipe(image, caption=caption, seed=seed, max_size=max_size or "auto", ensemble=member, tiles=tiles)
        return out, time.perf_counter() - start, pipe.device

    out, seconds, device = registry.run(model, work)
    inverse_depth = out.inverse_depth[0]
    extra, notes = product_writers(DOWNLOAD_FORMATS, inverse_depth, image, options)
    downloads = write_prediction(stem, DOWNLOAD_FORMATS, inverse_depth, product_writers=extra)

    (ph, pw), (h, w) = out.metadata["processing_sizes"][0], image.size
    caption_note = {"none": "no caption", "auto": f'BLIP-2 caption "{out.captions[0]}"'}.get(
        caption_mode, f'caption "{out.captions[0]}"'
    )
    combined = f" + {member.name} (pixel-wise average after normalisation)" if member else ""
    tiling = (out.metadata.get("tiling") or [None])[0]
    if tiling:
        combined += f" · detail from {tiling['tiles']} tiles ({tiling['seconds']:.1f} s)"
    label = (
        f"**{choice.name}**{combined} on {device} · processed at {pw} x {ph} px, output {w} x {h} px · "
        f"{seconds:.2f} s · {caption_note} · values: affine-invariant inverse depth (near = large)\n\n"
        f"3D files: {'; '.join(notes)}"
    )
    view = None
    if h * w <= MAX_VIEW_PIXELS:
        import trimesh

        surface = trimesh.load(output_path(stem, "glb"), force="mesh")
        view = stem.parent / "view.glb"
        atomic_write(view, glb_bytes(surface.apply_transform(VIEWER_FROM_CAMERA)))
    else:
        label += f"\n\n3D view skipped: over {MAX_VIEW_PIXELS:,} pixels (the PLY/GLB downloads are complete)"
    if choice.caveat:
        label += f"\n\n_{choice.caveat}_"
    rgb = (image.pixels.permute(1, 2, 0) * 255).round().byte().numpy()
    return ImageResult(output_path(stem, "color"), downloads, label, rgb, view)
