"""``primedepth video``: a colour depth video (and optional side-by-side, frames, float stack) per input video."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import options as opt
from .model_loading import load_command_pipeline, prepare_for_inference


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
    "--no-stabilise",
    is_flag=True,
    help="Keep each frame's own affine map (no scale/shift fit to the previous frames): colours may flicker.",
)
@click.option("--side-by-side", is_flag=True, help="Also write NAME_side.mp4 (RGB | depth with a colour bar).")
@click.option(
    "--frames",
    "frame_format",
    default="none",
    type=click.Choice(["none", "png16", "exr"]),
    show_default=True,
    help="Also write a frame sequence in NAME_frames/ (one value range per clip).",
)
@click.option("--no-npz", is_flag=True, help="Do not write NAME_depth.npz (float32 stack, frame numbers, times).")
@opt.cmap_option()
@opt.max_size_option()
@opt.device_option()
@opt.dtype_option()
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
def command(
    inputs,
    output_dir,
    model,
    stride,
    start,
    end,
    max_frames,
    no_stabilise,
    side_by_side,
    frame_format,
    no_npz,
    cmap,
    max_size,
    device,
    dtype,
    caption,
    seed,
    noise,
    low_memory,
    tiles,
    overwrite,
    cache_dir,
    local_files_only,
):
    """Depth videos for INPUTS (any video ffmpeg reads). Interrupted runs resume where they stopped."""
    from ..outputs.colour import colour_lut
    from ..outputs.video import VideoReadError, predict_video, require_av
    from ..pipelines.loading import WeightsNotFoundError
    from ..pipelines.model_folder import ModelError
    from ..pipelines.pipeline import DeviceUnavailableError

    try:
        colour_lut(cmap)
        require_av()
    except (ValueError, ImportError) as err:
        raise click.UsageError(str(err)) from None
    if start is not None and end is not None and end <= start:
        raise click.BadParameter(f"--end {end} is not after --start {start}", param_hint="--end")
    missing = [p for p in inputs if not p.is_file()]
    failures = [f"{p}: no such file" for p in missing]
    todo = [p for p in inputs if p.is_file()]

    try:
        model, pipe, notice = load_command_pipeline(
            model, device=device, cache_dir=cache_dir, local_files_only=local_files_only, needed=bool(todo)
        )
    except (WeightsNotFoundError, DeviceUnavailableError, ModelError, OSError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    if pipe is not None:
        prepare_for_inference(pipe, model, dtype, notice)

    written = 0
    for path in todo:
        try:
            result = predict_video(
                pipe,
                path,
                output_dir,
                stride=stride,
                start=start,
                end=end,
                max_frames=max_frames,
                stabilise=not no_stabilise,
                side_by_side_video=side_by_side,
                frames=None if frame_format == "none" else frame_format,
                npz=not no_npz,
                cmap=cmap,
                seed=seed,
                noise=noise,
                caption=caption,
                max_size="auto" if max_size is None else (max_size or None),
                low_memory=low_memory,
                tiles=tiles,
                overwrite=overwrite,
                model_id=model,
            )
        except VideoReadError as err:
            failures.append(str(err))
            continue
        except OSError as err:  # a missing caption model: every video would fail
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo(f"interrupted: {path}: computed frames are kept, rerun to resume", err=True)
            sys.exit(130)
        if result.skipped:
            click.echo(f"{path}: outputs exist, skipped (--overwrite to redo)", err=True)
            continue
        written += 1
        click.echo(
            f"{path}: {result.frames} frames at {float(result.fps):.3g} fps ({result.predicted} predicted, "
            f"{result.frames - result.predicted} resumed) -> {result.outputs['video']}",
            err=True,
        )
    click.echo(f"done: {written} written, {len(failures)} failed", err=True)
    for failure in failures:
        click.echo(f"  failed: {failure}", err=True)
    sys.exit(1 if failures else 0)
