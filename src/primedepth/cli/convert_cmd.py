"""``primedepth convert``: official checkpoint -> our model folder."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import fail_for, reported_errors
from .options import cache_dir_option, local_files_only_option, trust_pickle_option


@click.command("convert")
@click.argument("checkpoint")
@click.argument("out_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Official-style JSON config (format of official_tiny_config.json) [default: inferred from the "
    "checkpoint's tensor shapes].",
)
@trust_pickle_option()
@click.option(
    "--text-encoder",
    default=None,
    help="Hub id or folder of a 24-layer OpenCLIP ViT-H/14 text tower "
    "(CLIPTextModel), used when the checkpoint has none [default: laion/CLIP-ViT-H-14-laion2B-s32B-b79K].",
)
@click.option("--tokenizer", default=None, help="Hub id or folder of the CLIP tokenizer [default: --text-encoder].")
@cache_dir_option()
@local_files_only_option()
@reported_errors(lambda kw: kw["out_dir"] or _default_out_dir())
def command(checkpoint, out_dir, config_path, trust_pickle, text_encoder, tokenizer, cache_dir, local_files_only):
    """Convert an official PrimeDepth CHECKPOINT (a .ckpt file, or a hub id OWNER/NAME[/FILE.ckpt] such as
    CVL-Heidelberg/PrimeDepth) into OUT_DIR [default: ~/.cache/primedepth/PrimeDepth; for a hub id the conversion
    cache, keyed by repo and commit, which `predict --model OWNER/NAME` uses]."""
    # Imported when the command runs: they load torch (seconds), and `convert --help` answers in a fraction of one.
    from ..conversion.convert import convert_official_checkpoint
    from ..conversion.hub_weights import download_official_checkpoint, resolve_hub_model, split_hub_id
    from ..conversion.loading import MODEL_INDEX, WeightsNotFoundError, default_model_dir
    from ..conversion.official_checkpoint import UntrustedCheckpointError
    from ..models.frozen.text_encoder import DEFAULT_TEXT_ENCODER
    from ..utils.hub import cache_only, offline_reason

    hub_id = None if Path(checkpoint).expanduser().exists() else split_hub_id(checkpoint)
    text_encoder = text_encoder or DEFAULT_TEXT_ENCODER
    try:
        if hub_id and out_dir is None and config_path is None:
            folder = resolve_hub_model(
                checkpoint,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                trust_pickle=trust_pickle,
                text_encoder=text_encoder,
                tokenizer=tokenizer,
            )
            click.echo(f"converted {checkpoint} -> {folder}")
            return
        source = None
        if hub_id:
            if cache_only(local_files_only):
                raise WeightsNotFoundError(f"{checkpoint}: not a local file, and {offline_reason()}")
            path, commit, name, _ = download_official_checkpoint(*hub_id, cache_dir=cache_dir)
            if name == MODEL_INDEX:
                raise ValueError(f"{checkpoint}: already a PrimeDepth model repo; use it directly (--model)")
            checkpoint, source = path, f"{hub_id[0]}/{name}@{commit[:12]}"
        parts = dict(trust_pickle=trust_pickle, text_encoder=text_encoder, tokenizer=tokenizer)
        hub = dict(cache_dir=cache_dir, local_files_only=local_files_only)
        report = convert_official_checkpoint(
            checkpoint, out_dir or default_model_dir(), config_path, **parts, **hub, source=source
        )
    except (
        FileNotFoundError,
        FileExistsError,
        ValueError,
        UntrustedCheckpointError,
        WeightsNotFoundError,
        OSError,
    ) as err:
        fail_for(err, [out_dir or default_model_dir()])
    counts = ", ".join(f"{k} {v} tensors" for k, v in report.counts.items())
    click.echo(f"converted {checkpoint} -> {report.out_dir} ({counts})")
    for note in report.notes:
        click.echo(f"note: {note}")


def _default_out_dir():
    from ..conversion.loading import default_model_dir

    return default_model_dir()
