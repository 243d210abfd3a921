"""``primedepth pseudo-label IMAGES OUT``: depth, ADE20K-150 segmentation and captions for pre-training images.

The labelling itself is ``primedepth.jobs.label_files`` (models, defaults, layout). Resumable (done images are
skipped), sharded over processes with ``accelerate launch "$(which primedepth)" pseudo-label ...``; every process
appends to its own manifest shard, the main one merges them at the end.
IMAGES may also be WebDataset shards (paths, fsspec URLs, brace patterns); then OUT receives one result shard per
input shard (image, depth, segmentation, caption, metadata; see ``primedepth.distributed.shard_workers``), in this
process, over ``accelerate launch`` processes or as a Ray Data pipeline (``--engine ray``).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from ..constants import DEFAULT_CAPTIONER, IMAGE_EXTENSIONS
from ..jobs.label_files import DEFAULT_DEPTH, DEFAULT_SEGMENTATION, NO_CAPTIONS, Labellers, list_images
from .errors import EXIT_INPUTS_FAILED, reported_errors
from .options import local_files_only_option, threads_option
from .shard_runner import shard_options


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("images")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--depth-model", default=DEFAULT_DEPTH, show_default=True)
@click.option("--segmentation-model", default=DEFAULT_SEGMENTATION, show_default=True)
@click.option(
    "--caption-model",
    default=DEFAULT_CAPTIONER,
    show_default=True,
    help=f"BLIP-2 id or folder; '{NO_CAPTIONS}' labels without captions (empty ones).",
)
@click.option("--no-segmentation", is_flag=True, help="Depth and captions only.")
@click.option(
    "--captions-only", is_flag=True, help="Only captions: OUT/captions.json, keyed by path relative to IMAGES."
)
@local_files_only_option()
@threads_option()
@click.option("--limit", type=int, default=None, help="Label at most this many images (testing).")
@shard_options
@reported_errors("out")
def command(
    images,
    out,
    depth_model,
    segmentation_model,
    caption_model,
    no_segmentation,
    captions_only,
    local_files_only,
    limit,
    engine,
    workers,
    ray_address,
):
    """Label the images under IMAGES (a folder, or WebDataset shards) into OUT (see docs/training.md)."""

    from ..data.shards import is_shard_spec
    from ..jobs.label_files import ProcessLayout, caption_files, label_files

    if is_shard_spec(images):
        from ..distributed.shard_workers import PseudoLabelShardWorker
        from .shard_runner import run_shard_command

        if captions_only or limit:
            raise click.UsageError("--captions-only and --limit apply to image folders, not shards")
        make_labellers = functools.partial(
            Labellers, depth_model, segmentation_model, caption_model, "auto", local_files_only
        )
        make_worker = functools.partial(PseudoLabelShardWorker, make_labellers, segmentation=not no_segmentation)
        sys.exit(run_shard_command([images], out, make_worker, engine, workers, ray_address, overwrite=False))
    if not Path(images).is_dir():
        raise click.BadParameter(f"{images}: not a folder of images nor WebDataset shards (.tar)", param_hint="IMAGES")
    layout = ProcessLayout.current()
    images_root, out = Path(images).resolve(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list_images(images_root)[:limit] if limit else list_images(images_root)
    if not names:
        raise click.ClickException(f"{images_root}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    labellers = Labellers(depth_model, segmentation_model, caption_model, layout.device, local_files_only)
    if captions_only:
        result = caption_files(labellers, images_root, out, names, layout, log=click.echo)
    else:
        result = label_files(
            labellers, images_root, out, names, segmentation=not no_segmentation, layout=layout, log=click.echo
        )
    report_failures(result.failures)


def report_failures(failures: list[str]) -> None:
    """Name each image that could not be labelled (a rerun retries them); exit 1 if there is any."""
    if failures:
        click.echo(f"{len(failures)} image(s) failed (not labelled; a rerun retries them):", err=True)
        for failure in failures:
            click.echo(f"  failed: {failure}", err=True)
        sys.exit(EXIT_INPUTS_FAILED)
