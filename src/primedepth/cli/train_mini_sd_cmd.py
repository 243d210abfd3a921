"""``primedepth train-mini-sd CONFIG.toml``: the miniature Stable Diffusion that PrimeDepth-mini runs on (a frozen
model folder for ``primedepth train``; docs/mini-model.md)."""

from __future__ import annotations

import click

from .options import config_argument, overrides_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@config_argument()
@overrides_option("--set output_dir=runs/sd --set unet.steps=100 (value parsed as JSON, else kept as text)")
def command(config, overrides):
    """Train the mini Stable Diffusion (VAE, text tower, UNet at toy width) on rendered scenes from a TOML CONFIG
    (configs/mini-sd.toml) and save it as a frozen model folder."""
    from ..miniature.mini_sd import load_config, train_mini_sd

    click.echo(f"done: frozen mini-SD in {train_mini_sd(load_config(config, list(overrides)))}")
