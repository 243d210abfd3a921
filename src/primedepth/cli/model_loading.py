"""The model a command runs, loaded and announced the same way by ``predict`` and ``video``.

Imports happen inside the functions: this module is imported with the command's options, and the CLI only pays
for torch and diffusers when a command actually runs.
"""

from __future__ import annotations

import os

import click

from ..constants import TINY_RANDOM_CAVEAT
from .options import device_argument

EMBEDDED_HINT = "or try the tool without these weights: --model primedepth-mini (embedded, no download)"


def load_command_pipeline(
    model: str | None, *, device: str, cache_dir: str | None, local_files_only: bool, needed: bool = True
):
    """``(model name, pipeline, notice)``: ``--model`` or the default model (with the notice saying which, if any),
    loaded unless nothing is left to do (``needed`` False gives no pipeline). Raises what loading raises
    (``WeightsNotFoundError``, ``DeviceUnavailableError``, ``ModelError``, ``OSError``), with a hint to the embedded
    model. A default model that cannot be loaded (e.g. a converted checkpoint whose text tower could not be fetched)
    falls back to PrimeDepth-mini with a notice, as when there are no full weights at all."""
    from ..conversion.hub_weights import default_model
    from ..conversion.loading import DEFAULT_MODEL_ENV, EMBEDDED_MODEL, EMBEDDED_NOTICE, WeightsNotFoundError
    from ..conversion.model_folder import ModelError
    from ..pipelines.captioning import default_cache_file
    from ..pipelines.pipeline import PrimeDepthPipeline

    notice = None
    defaulted = model is None and not os.environ.get(DEFAULT_MODEL_ENV)  # neither --model nor $PRIMEDEPTH_MODEL
    if model is None:
        model, notice = default_model(cache_dir=cache_dir, local_files_only=local_files_only)
    if not needed:
        return model, None, notice
    load = lambda name: PrimeDepthPipeline.from_pretrained(
        name,
        device=device_argument(device),
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        caption_cache_file=default_cache_file(),
    )
    try:
        return model, load(model), notice
    except (WeightsNotFoundError, ModelError, OSError) as err:
        if model == EMBEDDED_MODEL:
            raise
        if not defaulted:
            err.args = (f"{err}; {EMBEDDED_HINT}",)
            raise
        first_line = str(err).splitlines()[0]
        notice = EMBEDDED_NOTICE.format(where=f"the default model {model} could not be loaded: {first_line}")
    return EMBEDDED_MODEL, load(EMBEDDED_MODEL), notice


def prepare_for_inference(pipe, model: str, dtype: str, notice: str | None) -> None:
    """``pipe.prepare_for_inference`` at the ``--dtype`` precision; then one line saying what runs where (and the
    default-model notice)."""
    from ..pipelines.precision import precision_of

    pipe.prepare_for_inference(dtype)
    if notice:
        click.echo(f"note: {notice}", err=True)
    caveat = f" ({TINY_RANDOM_CAVEAT})" if model == "tiny-random" else ""
    click.echo(f"model: {model} on {pipe.device} ({precision_of(pipe)}, --dtype {dtype}){caveat}", err=True)
