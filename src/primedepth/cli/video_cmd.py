"""``primedepth video``: a colour depth video (and optional side-by-side, frames, float stack) per input video."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..outputs.formats import FRAME_FORMATS
from . import options as opt
from .errors import fail_for, reported_errors
from .model_loading import load_command_pipeline, prepare_for_inference
from .usage import check_before_loading


@click.command("video")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@opt.output_dir_option()
@opt.model_option()
@click.option(
    "--stride",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Keep every N-th frame (the output fps is divided by N, so the duration stays).",
)
@click.option("--start", default=None, type=float, help="First second to process.")
@click.option("--end", default=None, type=float, help="Stop before this second.")
@click.option("--max-frames", default=None, type=click.IntRange(min=1), help="At most this many frames.")
@click.option(
    "--temporal",
    default="flow",
    type=click.Choice(["flow", "affine", "off"]),
    show_default=True,
    help="flow: average each pixel along its optical-flow track (occlusions keep the current frame); "
    "affine: fit only each frame's scale/shift to the previous frames; off: each frame as predicted (flickers).",
)
@click.option(
    "--fps",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Frame rate of a folder of frames [default: 24].",
)
@click.option("--side-by-side", is_flag=True, help="Also write NAME_side.mp4 (RGB | depth with a colour bar).")
@click.option(
    "--frames",
    "frame_format",
    default="none",
    type=click.Choice(["none", *FRAME_FORMATS]),
    show_default=True,
    help="Also write a frame sequence in NAME_frames/: 16-bit PNG (one value range per clip), float EXR or TIFF.",
)
@click.option("--no-npz", is_flag=True, help="Do not write NAME_depth.npz (float32 stack, frame numbers, times).")
@opt.cmap_option()
@opt.max_size_option()
@opt.device_option()
@opt.dtype_option()
@opt.threads_option()
@opt.caption_option(help="auto (BLIP-2 on the first frame, reused), none, or a text [default: the model's setting].")
@opt.seed_option(help="The noise draw (the same for every frame).")
@opt.noise_option()
@opt.low_memory_option()
@opt.tiles_option(
    default="off",
    help="auto|N|off as for predict: N tiles per frame along the long side, merged onto the whole-frame "
    "prediction (detail at the frame's resolution, N^2-fold cost per frame; off by default for video).",
)
@click.option("--overwrite", is_flag=True, help="Recompute videos whose outputs exist (and drop resume caches).")
@opt.cache_dir_option()
@opt.local_files_only_option()
@reported_errors("output_dir")
def command(
    inputs,
    output_dir,
    model,
    side_by_side,
    frame_format,
    no_npz,
    max_size,
    device,
    dtype,
    overwrite,
    cache_dir,
    local_files_only,
    **settings,
):
    """Depth videos for INPUTS (any video ffmpeg reads, or a folder of PNG/JPEG/TIFF/EXR frames in natural order).
    Interrupted runs resume where they stopped."""
    check_before_loading(inputs, output_dir, device)  # usage errors in a second, before torch is imported
    from ..conversion.loading import WeightsNotFoundError
    from ..conversion.model_folder import ModelError
    from ..jobs.video import plan_videos, predict_videos, require_av
    from ..licences import licence_line, weight_names
    from ..outputs.colour import colour_lut
    from ..outputs.temporal import require_cv2
    from ..pipelines.image_processor import max_size_setting
    from ..utils.devices import DeviceUnavailableError

    try:
        colour_lut(settings["cmap"])
        require_av()
        if settings["temporal"] == "flow":
            require_cv2()
    except (ValueError, ImportError) as err:
        raise click.UsageError(str(err)) from None
    start, end = settings["start"], settings["end"]
    if start is not None and end is not None and end <= start:
        raise click.BadParameter(f"--end {end} is not after --start {start}", param_hint="--end")
    outputs = dict(side_by_side_video=side_by_side, frames=None if frame_format == "none" else frame_format)
    outputs["npz"] = not no_npz
    plan = plan_videos(list(inputs), output_dir, overwrite=overwrite, **outputs)

    try:
        model, pipe, notice = load_command_pipeline(
            model, device=device, cache_dir=cache_dir, local_files_only=local_files_only, needed=plan.needed
        )
    except (WeightsNotFoundError, DeviceUnavailableError, ModelError, OSError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    click.echo(licence_line(weight_names(model)), err=True)
    if pipe is not None:
        prepare_for_inference(pipe, model, dtype, notice)

    settings.update(outputs, max_size=max_size_setting(max_size), model_id=model)
    try:
        result = predict_videos(
            pipe, plan, output_dir, overwrite=overwrite, log=lambda line: click.echo(line, err=True), **settings
        )
    except OSError as err:  # a missing caption model or a full disk: every video would fail
        fail_for(err, [output_dir])
    if result.interrupted is not None:
        click.echo(f"interrupted: {result.interrupted}: computed frames are kept, rerun to resume", err=True)
        sys.exit(130)
    for line in result.summary():
        click.echo(line, err=True)
    sys.exit(1 if result.failures else 0)
