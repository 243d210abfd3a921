"""The model a command runs, loaded and announced the same way by ``predict`` and ``video``.

Imports happen inside the functions: this module is imported with the command's options, and the CLI only pays
for torch and diffusers when a command actually runs.
"""

from __future__ import annotations

import click

from .options import device_argument

TINY_RANDOM_CAVEAT = " (random weights: smoke test only, the depth is meaningless)"


def load_command_pipeline(
    model: str | None, *, device: str, cache_dir: str | None, local_files_only: bool, needed: bool = True
):
    """``(model name, pipeline, notice)``: ``--model`` or the default model (with the notice saying which, if any),
    loaded unless nothing is left to do (``needed`` False gives no pipeline). Raises what loading raises
    (``WeightsNotFoundError``, ``DeviceUnavailableError``, ``ModelError``, ``OSError``)."""
    from ..pipelines.captioning import default_cache_file
    from ..pipelines.hub_weights import default_model
    from ..pipelines.pipeline import PrimeDepthPipeline

    notice = None
    if model is None:
        model, notice = default_model(cache_dir=cache_dir, local_files_only=local_files_only)
    if not needed:
        return model, None, notice
    pipe = PrimeDepthPipeline.from_pretrained(
        model,
        device=device_argument(device),
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        caption_cache_file=default_cache_file(),
    )
    return model, pipe, notice


def prepare_for_inference(pipe, model: str, dtype: str, notice: str | None) -> None:
    """NHWC convolutions (~10 % faster, same outputs), no VAE decoder, the ``--dtype`` precision; then one line
    saying what runs where (and the default-model notice)."""
    from ..pipelines.precision import precision_of

    pipe.optimize(channels_last=True, drop_vae_decoder=True)
    pipe.set_precision(dtype)
    if notice:
        click.echo(f"note: {notice}", err=True)
    caveat = TINY_RANDOM_CAVEAT if model == "tiny-random" else ""
    click.echo(f"model: {model} on {pipe.device} ({precision_of(pipe)}, --dtype {dtype}){caveat}", err=True)
