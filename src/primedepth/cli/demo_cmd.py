"""``primedepth demo``: PrimeDepth-mini (or any model) on held-out rendered scenes, offline, in about a minute."""

from __future__ import annotations

import json
import sys

import click

from .options import device_argument, device_option, model_option, noise_option, output_dir_option, threads_option


@click.command("demo")
@output_dir_option(default="primedepth-demo", help="Where the gallery and metrics go.")
@model_option(
    default="primedepth-mini",
    show_default=True,
    help="Model to score: the embedded PrimeDepth-mini, a folder (e.g. a training checkpoint), a hub id or "
    "tiny-random.",
)
@click.option(
    "--scenes", default=200, show_default=True, type=click.IntRange(min=1), help="Held-out rendered scenes to score."
)
@click.option(
    "--held-out-seed",
    default=7,
    show_default=True,
    type=int,
    help="Data seed of the held-out scenes (7: the trainer's validation set; the training stream uses 0-2).",
)
@noise_option(
    default="none",
    help="none: the posterior mean, as the trainer's validation scores it (the figures in "
    "docs/mini-model.md); sampled: the official single step.",
)
@click.option(
    "--metric",
    is_flag=True,
    help="Also metres: fuse with the embedded small metric prior (primedepth-mini-metric) and score prior and "
    "fusion against the metric ground truth without any alignment (docs/metric.md).",
)
@device_option()
@threads_option()
def command(output_dir, model, scenes, held_out_seed, noise, device, metric):
    """Render held-out scenes (never seen in training), predict, print δ1 / AbsRel, write a gallery
    (RGB | ground truth | prediction | error)."""
    from ..conversion.loading import WeightsNotFoundError
    from ..miniature.demo import run_demo
    from ..pipelines.pipeline import PrimeDepthPipeline
    from ..utils.atomic import atomic_path
    from ..utils.devices import DeviceUnavailableError

    try:
        pipe = PrimeDepthPipeline.from_pretrained(model, device=device_argument(device), local_files_only=True)
    except (WeightsNotFoundError, DeviceUnavailableError, OSError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    pipe.prepare_for_inference("fp32")
    click.echo(
        f"model: {model} on {pipe.device}; scoring {scenes} held-out rendered scenes "
        f"(disparity-space alignment, noise {noise})",
        err=True,
    )
    result = run_demo(pipe, scenes=scenes, gallery=output_dir / "gallery.png", noise=noise, seed=held_out_seed)
    m = result.metrics
    metres = None
    if metric:
        from ..data.scenes import held_out_scenes
        from ..miniature.metric_prior import metric_demo
        from ..models.metric_prior import MiniMetricPrior, embedded_metric_prior_dir

        try:
            prior = MiniMetricPrior.from_pretrained(embedded_metric_prior_dir())
        except FileNotFoundError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        metres = metric_demo(held_out_scenes(scenes, seed=held_out_seed), result.inverse_depth, prior)
    report = {
        "model": model,
        "scenes": scenes,
        "held_out_seed": held_out_seed,
        "noise": noise,
        "seconds": round(result.seconds, 1),
        **m,
        **({"metric": metres} if metres else {}),
    }
    with atomic_path(output_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(
        f"δ1 {m['delta1']:.4f}   AbsRel {m['abs_rel']:.4f}   δ2 {m['delta2']:.4f}   "
        f"({scenes} scenes, {result.seconds:.1f} s)"
    )
    for name, row in (metres or {}).items():
        click.echo(
            f"metres, {name}{' (primedepth-mini-metric)' if name == 'prior' else ' with the prediction'}: "
            f"AbsRel {row['abs_rel']:.4f}   δ1 {row['delta1']:.4f}   boundary F1 {row['boundary_f1']:.4f}   "
            "(no alignment)"
        )
    click.echo(f"gallery: {result.gallery}   metrics: {output_dir / 'metrics.json'}")
