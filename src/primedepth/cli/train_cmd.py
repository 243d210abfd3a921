"""``primedepth train CONFIG``: see docs/training.md."""

from __future__ import annotations

import sys

import click

from .errors import reported_errors
from .options import config_argument, overrides_option, threads_option, trust_pickle_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@config_argument()
@overrides_option("--set train.max_steps=100 (value parsed as JSON)")
@click.option(
    "--resume",
    default="auto",
    show_default=True,
    help="'auto' (newest checkpoint in output_dir, if any), a checkpoint folder, or 'none'.",
)
@click.option("-o", "--output-dir", default=None, help="Shortcut for --set output_dir=...")
@click.option("--max-steps", type=int, default=None, help="Shortcut for --set train.max_steps=...")
@threads_option()
@trust_pickle_option("the resumed checkpoint's optimizer.pt, needed only for checkpoints of older versions")
@reported_errors(lambda kw: kw["output_dir"] or _configured_output_dir(kw))
def command(config, overrides, resume, output_dir, max_steps, trust_pickle):
    """Train PrimeDepth's labeller on a frozen Stable Diffusion (single GPU, multi-GPU or multi-node via
    `accelerate launch`). Checkpoints load with PrimeDepthPipeline.from_pretrained. The mini Stable Diffusion of
    PrimeDepth-mini trains with `primedepth train-mini-sd configs/mini-sd.toml`."""
    if str(config).endswith(".toml"):
        raise click.UsageError(f"{config}: a TOML config is a mini-SD recipe: run `primedepth train-mini-sd {config}`")
    from ..data.common import DataError
    from ..training.checkpointing import CheckpointError
    from ..training.config import ConfigError
    from ..training.trainer import run_training
    from ..utils.torch_files import UntrustedCheckpointError

    overrides = list(overrides)
    if output_dir:
        overrides.append(f'output_dir="{output_dir}"')
    if max_steps:
        overrides.append(f"train.max_steps={max_steps}")
    try:
        trainer = run_training(
            config, overrides, resume=None if resume == "none" else resume, trust_pickle=trust_pickle
        )
    except (ConfigError, DataError, FileNotFoundError, UntrustedCheckpointError) as err:
        raise click.ClickException(str(err)) from None
    except CheckpointError as err:  # a checkpoint that cannot be resumed: a usage error, one line
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    if trainer.acc.is_main_process:
        click.echo(f"done: {trainer.step} steps, checkpoints in {trainer.out / 'checkpoints'}")


def _configured_output_dir(params: dict) -> str:
    """The output folder the config and ``--set`` overrides give (named by a write error)."""
    from ..training.config import load_config

    return load_config(params["config"], list(params["overrides"]))["output_dir"]
