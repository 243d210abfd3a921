"""``primedepth predict``: depth for files, folders and globs, resumable, one bad file never stops a batch."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import options as opt
from .model_loading import load_command_pipeline, prepare_for_inference
from .shard_runner import shard_options

MAP_FORMATS = ("npy", "png16", "color")  # formats written for each ensemble member with --save-members
# Exit codes: every image done (or skipped) / some inputs failed / bad usage or model / an output could not be written.
EXIT_OK, EXIT_INPUTS_FAILED, EXIT_USAGE_OR_MODEL, EXIT_OUTPUT_ERROR = 0, 1, 2, 3


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True)
@opt.output_dir_option()
@opt.model_option()
@click.option(
    "--format",
    "formats",
    default="npy,png16,color",
    show_default=True,
    help="Comma-separated: npy (float32 inverse depth), png16 (16-bit normalised), color (near = warm), "
    "seg (segmentation, indexed PNG), grey (8-bit, white = near), side (RGB | colour depth with a "
    "colour bar), tiff / exr / pfm (float32, see --output-kind), ply (point cloud), glb (mesh), "
    "depth (metric depth npy, metres; implied by --align-to). ply, glb and depth need --align-to or "
    "--depth-range.",
)
@opt.cmap_option()
@click.option(
    "--output-kind",
    default="inverse-depth",
    type=click.Choice(["inverse-depth", "depth"]),
    show_default=True,
    help="What tiff/exr/pfm hold; depth (metres) needs --align-to or --depth-range.",
)
@click.option(
    "--align-to",
    default=None,
    type=click.Path(exists=True, path_type=Path),
    help="Sparse metric depths to align to (robust scale/shift in disparity): a .npy (metres, 0 = hole), "
    "KITTI-style 16-bit .png (metres * 256) or .csv of x,y,depth; or a folder of STEM.<ext> per "
    "input. Writes NAME_depth.npy (metres) and reports the fit.",
)
@click.option(
    "--depth-range",
    default=None,
    help="NEAR,FAR in metres: the ASSUMED depths of the nearest and "
    "farthest pixels, for 3D/depth outputs without --align-to.",
)
@click.option("--focal-px", default=None, type=float, help="Focal length in pixels for ply/glb.")
@click.option(
    "--fov",
    "fov_deg",
    default=None,
    type=float,
    help="Field of view (degrees, long side) for ply/glb [default: EXIF 35 mm-equivalent focal length, else 60].",
)
@opt.max_size_option()
@click.option(
    "--native-size",
    is_flag=True,
    help="Reproduce the authors' output size (8*floor(H/8) x 8*floor(W/8) "
    "unless downscaled) instead of the input size.",
)
@opt.device_option()
@opt.dtype_option()
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(min=1))
@opt.caption_option()
@opt.seed_option()
@opt.noise_option()
@opt.low_memory_option()
@opt.tiles_option()
@click.option("--overwrite", is_flag=True, help="Recompute images whose outputs already exist.")
@opt.ensemble_option()
@click.option(
    "--save-members",
    is_flag=True,
    help="With --ensemble, also write each member's maps (NAME.primedepth.*, NAME.depth-anything-v2*.*).",
)
@opt.cache_dir_option()
@opt.local_files_only_option()
@shard_options
def command(
    inputs,
    output_dir,
    model,
    formats,
    cmap,
    output_kind,
    align_to,
    depth_range,
    focal_px,
    fov_deg,
    max_size,
    native_size,
    device,
    dtype,
    batch_size,
    caption,
    seed,
    noise,
    low_memory,
    tiles,
    ensemble,
    save_members,
    overwrite,
    cache_dir,
    local_files_only,
    engine,
    workers,
    ray_address,
):
    """Predict affine-invariant inverse depth for INPUTS (files, folders, globs; or WebDataset shards: paths, fsspec
    URLs, brace patterns like shards/{00000..00099}.tar, written as result shards of the same names)."""
    from tqdm.auto import tqdm

    from ..data.shards import is_shard_spec
    from ..outputs.alignment import SparseDepthError
    from ..outputs.colour import colour_lut
    from ..outputs.products import OutputOptions, product_writers
    from ..pipelines.depth_anything import DepthAnything
    from ..pipelines.export import FORMATS, output_path, write_prediction
    from ..pipelines.image_processor import ImageLoadError, load_image
    from ..pipelines.inputs import collect_inputs
    from ..pipelines.loading import WeightsNotFoundError
    from ..pipelines.model_folder import ModelError
    from ..pipelines.pipeline import DeviceUnavailableError
    from ..pipelines.tiling import AUTO_MIN_RATIO
    from ..utils.atomic import ensure_writable_folder, remove_stale_temps

    fmt_list = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in fmt_list if f not in FORMATS]
    if unknown or not fmt_list:
        raise click.BadParameter(
            f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}", param_hint="--format"
        )
    if align_to is not None and "depth" not in fmt_list:
        fmt_list.append("depth")
    try:
        colour_lut(cmap)
        near_far = tuple(float(v) for v in depth_range.split(",")) if depth_range else None
        if near_far is not None and len(near_far) != 2:
            raise ValueError(f"--depth-range takes NEAR,FAR, got {depth_range!r}")
        products = OutputOptions(cmap, output_kind, near_far, align_to, focal_px, fov_deg)
        products.check(fmt_list)
    except (ValueError, ImportError) as err:
        raise click.UsageError(str(err)) from None
    max_size = "auto" if max_size is None else (max_size or None)  # "auto": the model's setting
    options = dict(
        caption=caption,
        seed=seed,
        noise=noise,
        max_size=max_size,
        match_input_size=not native_size,
        segmentation="seg" in fmt_list,
        low_memory=low_memory,
        tiles=tiles,
    )
    if all(is_shard_spec(item) for item in inputs):
        from .shard_runner import predict_shards

        pipeline_kwargs = dict(
            model=model,
            device=opt.device_argument(device),
            precision=dtype,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        worker_args = (fmt_list, options, batch_size)
        sys.exit(
            predict_shards(
                list(inputs), output_dir, pipeline_kwargs, worker_args, engine, workers, ray_address, overwrite
            )
        )
    items, failures = collect_inputs(list(inputs), output_dir)
    if align_to is not None and align_to.is_file() and len(items) > 1:
        raise click.UsageError(
            f"--align-to {align_to} is one file but {len(items)} images are given; pass a "
            "folder holding STEM.npy / .png / .csv per image"
        )
    try:
        ensure_writable_folder(output_dir)
    except OSError as err:
        click.echo(f"error: {err.filename}: output folder is not writable ({err.strerror})", err=True)
        sys.exit(EXIT_OUTPUT_ERROR)
    remove_stale_temps(output_dir)  # temporaries of killed runs
    todo = [
        (f, s) for f, s in items if overwrite or not all(output_path(output_dir / s, fmt).exists() for fmt in fmt_list)
    ]
    skipped = len(items) - len(todo)

    member = None
    try:
        model, pipe, notice = load_command_pipeline(
            model, device=device, cache_dir=cache_dir, local_files_only=local_files_only, needed=bool(todo)
        )
        if pipe is not None and ensemble:
            member = DepthAnything.from_spec(
                ensemble, device=pipe.device, cache_dir=cache_dir, local_files_only=local_files_only
            )
    except (WeightsNotFoundError, DeviceUnavailableError, ModelError, OSError, ValueError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_USAGE_OR_MODEL)
    if pipe is not None:
        pipe.captioner.required = caption == "auto"  # asked for explicitly: no silent empty-prompt fallback
        prepare_for_inference(pipe, model, dtype, notice)

    written, write_error = 0, None
    options["ensemble"] = member
    announced = []

    def announce_tiling(out, tiles):
        """One line, the first time ``auto`` tiles an image."""
        tiled = [info for info in out.metadata.get("tiling") or [] if info]
        if tiles == "auto" and tiled and not announced:
            announced.append(True)
            tqdm.write(
                f"tiles: inputs of at least {AUTO_MIN_RATIO}x the processing size are predicted in "
                f"{tiled[0]['tiles']} tiles on top of the whole-image prediction ({tiled[0]['seconds']:.1f} s for "
                "the first); --tiles off for one whole-image prediction",
                file=sys.stderr,
            )

    bar = tqdm(total=len(todo), desc="predict", unit="img", disable=not todo)
    try:
        for start in range(0, len(todo), batch_size):
            batch = []
            for file, stem in todo[start : start + batch_size]:
                try:
                    batch.append((load_image(file), stem))
                except ImageLoadError as err:
                    failures.append(str(err))
                    bar.update(1)
            # Run the batch together; if it fails, run its images one by one so the culprit is named.
            groups = [batch] if len(batch) <= 1 else [batch, *[[b] for b in batch]]
            for group in groups:
                try:
                    out = pipe([img for img, _ in group], batch_size=batch_size, **options)
                except OSError as err:  # a missing caption model or text encoder: every image would fail
                    bar.close()
                    click.echo(f"error: {err}", err=True)
                    sys.exit(EXIT_USAGE_OR_MODEL)
                except (ValueError, RuntimeError) as err:
                    if len(group) == 1:
                        failures.append(f"{group[0][0].source}: prediction failed ({err})")
                        bar.update(1)
                    continue
                announce_tiling(out, tiles)
                for k, (img, stem) in enumerate(group):
                    seg = out.segmentation[k] if out.segmentation is not None else None
                    sparse = products.sparse_file(stem)
                    try:
                        if align_to is not None and sparse is None:
                            raise SparseDepthError(f"{align_to}: no {stem}.npy / .png / .csv for this image")
                        extra, notes = product_writers(fmt_list, out.inverse_depth[k], img, products, sparse)
                    except SparseDepthError as err:
                        failures.append(f"{img.source}: {err}")
                        bar.update(1)
                        continue
                    for line in notes:
                        tqdm.write(f"{img.source}: {line}", file=sys.stderr)
                    try:
                        write_prediction(
                            output_dir / stem, fmt_list, out.inverse_depth[k], seg, cmap=cmap, product_writers=extra
                        )
                        if save_members and out.members:
                            member_formats = [f for f in fmt_list if f in MAP_FORMATS]
                            for name, maps in out.members.items():
                                write_prediction(
                                    output_dir / stem.parent / f"{stem.name}.{name}", member_formats, maps[k], cmap=cmap
                                )
                    except OSError as err:  # disk full, folder gone or read-only: no later image can do better
                        write_error = f"{err.filename or output_dir / stem}: cannot write ({err.strerror or err})"
                        break
                    written += 1
                    bar.update(1)
                break
            if write_error:
                break
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"interrupted: {written} written; finished outputs are complete, rerun to resume", err=True)
        sys.exit(130)
    bar.close()
    remove_stale_temps(output_dir)  # also those of runs killed while this one ran
    if write_error:
        click.echo(f"error: {write_error}; stopped", err=True)
    left = f", {len(todo) - written} not done" if write_error else ""
    click.echo(f"done: {written} written, {skipped} skipped (outputs exist), {len(failures)} failed{left}", err=True)
    for failure in failures:
        click.echo(f"  failed: {failure}", err=True)
    sys.exit(EXIT_OUTPUT_ERROR if write_error else EXIT_INPUTS_FAILED if failures else EXIT_OK)
