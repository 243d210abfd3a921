"""``primedepth app``: the web app (Gradio), served on this machine's loopback address unless told otherwise."""

from __future__ import annotations

import sys

import click

from ..app.server import AppLimits
from .options import (
    device_argument,
    device_option,
    ensemble_option,
    local_files_only_option,
    metric_option,
    threads_option,
)


def _limit(default: int, help: str) -> dict:
    """Settings of a positive whole-number limit option."""
    return dict(default=default, show_default=True, type=click.IntRange(min=1), help=help)


@click.command("app")
@click.option(
    "--model",
    "models",
    multiple=True,
    help="A model to offer (folder, hub id or tiny-random); repeat for several. The converted official "
    "weights and the embedded PrimeDepth-mini are offered too when present; the first is the default.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes the app to your network."
)
@click.option("--port", default=7860, show_default=True, type=click.IntRange(0, 65535))
@click.option("--share", is_flag=True, help="Also create a temporary public link through Gradio's share servers.")
@device_option()
@threads_option()
@click.option("--max-upload-mb", **_limit(AppLimits.upload_mb, "Largest file a visitor may upload."))
@click.option("--max-pixels", **_limit(AppLimits.pixels, "Largest image (width x height) the app processes."))
@click.option("--max-video-frames", **_limit(AppLimits.video_frames, "Most frames one video request may ask for."))
@click.option(
    "--results-minutes",
    **_limit(AppLimits.results_minutes, "Results (and uploads) older than this are deleted while the app runs."),
)
@click.option(
    "--results-mb",
    **_limit(AppLimits.results_mb, "The results kept are at most this size in all (the oldest go first)."),
)
@local_files_only_option()
@ensemble_option(help="Offer the ensemble with Depth Anything V2 (its weights are loaded at start).")
@metric_option(help="Offer depth in metres: fusion with this metric prior (its weights are loaded at start).")
def command(models, device, max_upload_mb, max_pixels, max_video_frames, results_minutes, results_mb, **settings):
    """Serve the PrimeDepth web app: upload an image or a clip, see and download its depth.

    Everything it writes lives in one temporary folder, removed when the app ends (normal exit, Ctrl-C, SIGTERM,
    SIGHUP). PLY / GLB downloads of images over 1 MP are built on a subsampled grid of at most 1,000,000 points."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        click.echo('error: the web app needs Gradio: pip install "primedepth[app]"', err=True)
        sys.exit(2)
    from ..app import launch

    try:
        limits = AppLimits(max_upload_mb, max_pixels, max_video_frames, results_minutes, results_mb)
        launch(models, device=device_argument(device), limits=limits, **settings)
    except (ValueError, OSError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
