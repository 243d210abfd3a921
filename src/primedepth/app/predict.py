"""One image through the pipeline and the package's writers, for the app: the same loader, pipeline call
(``jobs.predict_files.predict_in_batches``) and output files as ``primedepth predict`` (npy, 16-bit PNG, colour map,
RGB | depth, PLY point cloud, GLB mesh), written into a fresh folder under the app's own temporary folder, plus the
honest account of what ran."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..jobs.predict_files import predict_in_batches
from ..licences import licence_line, licence_metadata
from ..outputs.formats import METRIC_FORMATS
from ..outputs.geometry import glb_bytes
from ..outputs.products import OutputOptions, product_writers
from ..outputs.writers import output_path, write_prediction
from ..pipelines.image_processor import load_image, max_size_setting
from ..utils.atomic import atomic_write
from .models import ModelRegistry
from .results import store_for

DOWNLOAD_FORMATS = ["npy", "png16", "color", "side", "ply", "glb"]
DEFAULT_DEPTH_RANGE = (1.0, 10.0)
MAX_VIEW_PIXELS = 1_000_000  # larger meshes are offered as downloads only: a browser would struggle to show them
# The PLY / GLB files are built from at most this many depth pixels (larger maps are subsampled for them): at full
# size a 25 MP photo made a 1 GB GLB and needed gigabytes of memory to build it.
MAX_3D_PIXELS = 1_000_000
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


# The writers' notes name the CLI options; the page has fields instead (and no focal length or field of view).
PAGE_WORDING = {
    "(--depth-range)": "(the nearest and farthest depth set on this page)",
    "(no --focal-px, --fov or EXIF)": "(the image has no EXIF focal length)",
}


def page_wording(note: str) -> str:
    """A writer's note in the page's terms."""
    for cli, page in PAGE_WORDING.items():
        note = note.replace(cli, page)
    return note


def check_pixels(path: str | Path, max_pixels: int, name: str) -> None:
    """Refuse images over ``max_pixels`` from their header alone, before anything decodes them (a small file can
    hold a huge image). Files PIL cannot identify pass: the loader names their problem."""
    try:
        with Image.open(path) as opened:
            w, h = opened.size
    except Image.DecompressionBombError as err:  # far over PIL's own limit: named like `primedepth predict` does
        raise InputRejected(f"{name}: image too large to decode safely ({err})") from None
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
    max_size: int | None = None,
    depth_range: tuple[float, float] = DEFAULT_DEPTH_RANGE,
    workdir: Path,
    max_pixels: int,
    name: str | None = None,
    seed: int = 0,
    ensemble: bool = False,
    metric: bool = False,
    tiles: str | int = "auto",
) -> ImageResult:
    """Depth for the image file ``path`` with model ``model``; ``max_size`` as ``--max-size`` (None: the model's own,
    0: the input's size); ``depth_range`` is the assumed (nearest, farthest) depth in metres that turns the
    affine-invariant prediction into the 3D files; ``ensemble`` averages with the registry's Depth Anything member;
    ``metric`` fuses with the registry's metric prior instead (metres, its camera, a confidence map, no assumed
    range); ``tiles`` (``"auto"``, ``"off"`` or a number) adds detail at the input's resolution from tiles
    (``PrimeDepthPipeline.__call__``). Raises ``InputRejected`` (bad input or option), ``ImageLoadError`` (not an
    image), ``OSError`` (weights or a caption model that cannot be loaded) or the pipeline's ``ValueError`` /
    ``RuntimeError``."""
    name = name or Path(path).name
    choice = registry.choice(model)
    member = registry.ensemble_member if ensemble else None
    if ensemble and member is None:
        raise InputRejected("this app has no Depth Anything weights for the ensemble (start it with --ensemble)")
    prior = registry.metric_prior if metric else None
    if metric and prior is None:
        raise InputRejected("this app has no metric prior for depth in metres (start it with --metric)")
    caption = caption_argument(caption_mode, caption_text)
    try:
        max_size = max_size_setting(max_size)
    except ValueError as err:
        raise InputRejected(str(err)) from None
    options = OutputOptions(depth_range=tuple(float(v) for v in depth_range))
    options.check(DOWNLOAD_FORMATS)
    check_pixels(path, max_pixels, name)
    image = load_image(path, name=name)
    store = store_for(workdir)
    folder = store.new_folder()
    try:
        return _predict_into(
            registry,
            image,
            folder / Path(name).stem,
            choice,
            member,
            prior,
            caption,
            caption_mode,
            options,
            model=model,
            seed=seed,
            max_size=max_size,
            tiles=tiles,
        )
    finally:
        store.done(folder)


def step_for_3d(height: int, width: int) -> int:
    """The grid step (every k-th pixel in both directions) that keeps a map within ``MAX_3D_PIXELS``."""
    return max(1, int(np.ceil(np.sqrt(height * width / MAX_3D_PIXELS))))


def subsampled_for_3d(values: np.ndarray, step: int) -> np.ndarray:
    """``values`` on the grid of every ``step``-th pixel in both directions (so that no depth is blended across an
    edge), for the PLY / GLB files."""
    return values if step <= 1 else np.ascontiguousarray(values[::step, ::step])


def metric_on_grid(result, step: int):
    """A ``MetricResult`` on the grid of ``subsampled_for_3d`` (maps subsampled, focal length and principal point
    scaled), so that metric 3D files of a large image stay within the same bound."""
    if result is None or step <= 1:
        return result
    fusion = result.fusion
    grid = {k: subsampled_for_3d(getattr(fusion, k), step) for k in ("depth", "residual", "confidence")}
    if fusion.correction is not None:
        grid["correction"] = subsampled_for_3d(fusion.correction, step)
    k = result.intrinsics
    camera = replace(k, fx=k.fx / step, fy=k.fy / step, cx=k.cx / step, cy=k.cy / step)
    prior_depth = subsampled_for_3d(result.prior_depth, step)
    return replace(result, fusion=replace(fusion, **grid), prior_depth=prior_depth, intrinsics=camera)


def _predict_into(
    registry, image, stem, choice, member, prior, caption, caption_mode, options, *, model, seed, max_size, tiles
):
    """The pipeline run and the files of ``predict_image``, written under ``stem``."""

    def work(pipe):
        start = time.perf_counter()
        call = dict(caption=caption, seed=seed, max_size=max_size, ensemble=member, metric=prior, tiles=tiles)
        [(_, out, error)] = predict_in_batches(pipe, [image], 1, call)  # the path of `primedepth predict`
        if error is not None:
            raise error
        return out, time.perf_counter() - start, pipe.device

    out, seconds, device = registry.run(model, work)
    inverse_depth = out.inverse_depth[0]
    formats = DOWNLOAD_FORMATS + (["depth", *METRIC_FORMATS] if prior else [])
    result = out.metric[0] if prior else None
    metadata = {"model": choice.name, "licences": licence_metadata([choice.name, prior.name])} if prior else None
    flat = [f for f in formats if f not in ("ply", "glb")]
    extra, notes = product_writers(flat, inverse_depth, image, options, metric=result, metadata=metadata)
    step = step_for_3d(*inverse_depth.shape)
    grid = subsampled_for_3d(inverse_depth, step)
    extra_3d, notes_3d = product_writers(["ply", "glb"], grid, image, options, metric=metric_on_grid(result, step))
    if result is None:  # with a prior, the flat files' note already states the fit and the camera, at full size
        notes += notes_3d
    downloads = write_prediction(stem, formats, inverse_depth, product_writers={**extra, **extra_3d})
    if grid.shape != inverse_depth.shape:
        notes.append(f"built on {grid.shape[1]} x {grid.shape[0]} points (at most {MAX_3D_PIXELS:,})")

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
        f"3D files: {'; '.join(page_wording(note) for note in notes)}"
    )
    if prior:
        label += f"\n\nMetres: {licence_line([choice.name, prior.name])}"
    view = None
    if grid.size <= MAX_VIEW_PIXELS:
        import trimesh

        surface = trimesh.load(output_path(stem, "glb"), force="mesh")
        view = stem.parent / "view.glb"
        surface.apply_transform(VIEWER_FROM_CAMERA)
        # shown at the scale where the photo's camera (the origin) is 1 from the mesh's centre, so that the viewer's
        # fixed orbit radius (blocks.VIEW_CAMERA) puts it on the photo's axis, a step behind that camera
        distance = float(np.linalg.norm(surface.bounds.mean(axis=0)))
        if distance > 0:
            surface.apply_scale(1.0 / distance)
        atomic_write(view, glb_bytes(surface))
    else:
        label += f"\n\n3D view skipped: over {MAX_VIEW_PIXELS:,} pixels (the PLY/GLB downloads are complete)"
    if choice.caveat:
        label += f"\n\n_{choice.caveat}_"
    rgb = image.rgb()
    return ImageResult(output_path(stem, "color"), downloads, label, rgb, view)
