"""``primedepth predict``: depth for files, folders and globs, resumable, one bad file never stops a batch."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import options as opt
from .errors import EXIT_INPUTS_FAILED, EXIT_OK, EXIT_OUTPUT_ERROR, EXIT_USAGE_OR_MODEL
from .model_loading import load_command_pipeline, prepare_for_inference
from .shard_runner import shard_options
from .usage import check_before_loading, formats_callback


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True)
@opt.output_dir_option()
@opt.model_option()
@click.option(
    "--format",
    "formats",
    default="npy,png16,color",
    show_default=True,
    callback=formats_callback,
    help="Comma-separated: npy (float32 inverse depth), png16 (16-bit normalised), color or colour (near = warm), "
    "seg (segmentation, indexed PNG), grey (8-bit, white = near), side (RGB | colour depth with a "
    "colour bar), tiff / exr / pfm (float32, see --output-kind), ply (point cloud), glb (mesh), "
    "depth (metric depth npy, metres; implied by --align-to and --metric). ply, glb and depth need --metric, "
    "--align-to or --depth-range.",
)
@opt.cmap_option()
@click.option(
    "--output-kind",
    default=None,
    type=click.Choice(["inverse-depth", "depth"]),
    help="What tiff/exr/pfm hold; depth (metres) needs --metric, --align-to or --depth-range "
    "[default: depth with --metric, else inverse-depth].",
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
@click.option(
    "--focal-px",
    default=None,
    type=float,
    callback=opt.camera_value,
    help="Focal length in pixels for ply/glb and --metric.",
)
@click.option(
    "--fov",
    "fov_deg",
    default=None,
    type=float,
    callback=opt.camera_value,
    help="Field of view (degrees, long side) for ply/glb and --metric [default: EXIF 35 mm-equivalent focal "
    "length, else the --metric prior's estimate, else 60].",
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
@opt.threads_option()
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(min=1))
@opt.caption_option()
@opt.seed_option()
@opt.noise_option()
@opt.low_memory_option()
@opt.tiles_option()
@click.option(
    "--overwrite",
    is_flag=True,
    help="Recompute images whose outputs already exist (a file no primedepth run wrote is never replaced).",
)
@opt.ensemble_option()
@click.option(
    "--save-members",
    is_flag=True,
    help="With --ensemble, also write each member's maps (NAME.primedepth.*, NAME.depth-anything-v2*.*).",
)
@opt.metric_option()
@opt.metric_correction_option()
@opt.commercial_safe_option()
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
    metric,
    metric_correction,
    commercial_safe,
    overwrite,
    cache_dir,
    local_files_only,
    engine,
    workers,
    ray_address,
):
    """Predict affine-invariant inverse depth for INPUTS (files, folders, globs; or WebDataset shards: paths, fsspec
    URLs, brace patterns like shards/{00000..00099}.tar, written as result shards of the same names)."""
    check_before_loading(inputs, output_dir, device)  # usage errors in a second, before torch is imported
    from ..conversion.loading import WeightsNotFoundError
    from ..conversion.model_folder import ModelError
    from ..data.shards import is_shard_spec
    from ..jobs.predict_files import plan_files, predict_files
    from ..licences import check_commercial, licence_line, licence_metadata, weight_names
    from ..outputs.colour import colour_lut
    from ..outputs.formats import METRIC_FORMATS
    from ..outputs.products import OutputOptions
    from ..pipelines.depth_anything import DepthAnything
    from ..pipelines.image_processor import max_size_setting
    from ..pipelines.metric import load_prior, parse_prior
    from ..utils.atomic import ensure_writable_folder
    from ..utils.devices import DeviceUnavailableError
    from .inputs import collect_inputs

    fmt_list = formats.split(",")  # checked and de-aliased by formats_callback
    if align_to is not None and "depth" not in fmt_list:
        fmt_list.append("depth")
    if metric is not None:
        if align_to is not None:
            raise click.UsageError("--metric and --align-to both give metres; use --metric points=FILE for points")
        fmt_list += [f for f in ("depth", *METRIC_FORMATS) if f not in fmt_list]
    output_kind = output_kind or ("depth" if metric else "inverse-depth")
    try:
        if metric is not None:
            parse_prior(metric)
        colour_lut(cmap)
        near_far = tuple(float(v) for v in depth_range.split(",")) if depth_range else None
        if near_far is not None and len(near_far) != 2:
            raise ValueError(f"--depth-range takes NEAR,FAR, got {depth_range!r}")
        products = OutputOptions(cmap, output_kind, near_far, align_to, focal_px, fov_deg, metric=metric)
        products.check(fmt_list)
    except (ValueError, ImportError) as err:
        raise click.UsageError(str(err)) from None
    max_size = max_size_setting(max_size)
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

        if metric is not None:
            raise click.UsageError("--metric works on image files, not on WebDataset shards")
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
    if metric is not None and metric.startswith("points=") and len(items) > 1:
        raise click.UsageError(f"--metric {metric} is one file but {len(items)} images are given")
    try:
        ensure_writable_folder(output_dir)
    except OSError as err:
        click.echo(f"error: {err.filename}: output folder is not writable ({err.strerror})", err=True)
        sys.exit(EXIT_OUTPUT_ERROR)
    plan = plan_files(items, output_dir, fmt_list, overwrite, failures)

    member = prior = None
    try:
        model, pipe, notice = load_command_pipeline(
            model, device=device, cache_dir=cache_dir, local_files_only=local_files_only, needed=bool(plan.todo)
        )
        weights = weight_names(model, ensemble, metric)
        click.echo(licence_line(weights), err=True)
        if commercial_safe:
            check_commercial(weights)
        if pipe is not None and ensemble:
            member = DepthAnything.from_spec(
                ensemble, device=pipe.device, cache_dir=cache_dir, local_files_only=local_files_only
            )
        if pipe is not None and metric:
            prior = load_prior(metric, device=pipe.device, cache_dir=cache_dir, local_files_only=local_files_only)
    except (WeightsNotFoundError, DeviceUnavailableError, ModelError, OSError, ValueError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_USAGE_OR_MODEL)
    if pipe is not None:
        pipe.captioner.required = caption == "auto"  # asked for explicitly: no silent empty-prompt fallback
        prepare_for_inference(pipe, model, dtype, notice)

    options["ensemble"] = member
    if prior is not None:
        options.update(metric=prior, focal_px=focal_px, fov=fov_deg, metric_correction=metric_correction)
    try:
        result = predict_files(
            pipe,
            plan,
            options=options,
            products=products,
            batch_size=batch_size,
            metadata={"model": model, "licences": licence_metadata(weights)},
            save_members=save_members,
        )
    except OSError as err:  # a missing caption model or text encoder: every image would fail
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_USAGE_OR_MODEL)
    if result.interrupted:
        click.echo(f"interrupted: {result.written} written; finished outputs are complete, rerun to resume", err=True)
        sys.exit(130)
    for line in result.summary():
        click.echo(line, err=True)
    sys.exit({"ok": EXIT_OK, "inputs failed": EXIT_INPUTS_FAILED}.get(result.status, EXIT_OUTPUT_ERROR))
