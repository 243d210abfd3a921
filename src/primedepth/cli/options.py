"""Options shared by the sub-commands: one definition each, so the same name has the same type, choices and default
in ``predict``, ``video``, ``demo``, ``app``, ``eval``, ``bench``, ``export`` and the training commands."""

from __future__ import annotations

from pathlib import Path

import click

from ..constants import NOISE_MODES, PRECISION_CHOICES

DEVICES = ("auto", "cpu", "cuda", "mps")
MODEL_DEFAULT_HELP = "[default: $PRIMEDEPTH_MODEL, the cached PrimeDepth when present, else primedepth-mini]"


def output_dir_option(default: str | None = None, help: str = "Folder for the outputs (created if needed)."):
    """``-o/--output-dir``: required when there is no sensible default."""
    return click.option(
        "-o",
        "--output-dir",
        default=default,
        required=default is None,
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help=help,
    )


def model_option(
    help: str = "A converted model folder, a hub repo id, 'primedepth-mini' (embedded) or "
    f"'tiny-random' {MODEL_DEFAULT_HELP}.",
    **kwargs,
):
    return click.option("--model", default=kwargs.pop("default", None), help=help, **kwargs)


def device_option(help: str | None = None):
    return click.option(
        "--device",
        default="auto",
        type=click.Choice(DEVICES),
        show_default=True,
        help=help or "auto: CUDA, then MPS, else CPU.",
    )


def dtype_option(
    help: str = "Precision: auto = the fastest configuration within 0.2 δ1 points / 0.002 AbsRel of "
    "fp32 where the hardware computes it natively (bf16 on AVX512-BF16/AMX CPUs where it is "
    "measured faster, Ampere+ GPUs), else fp32; -frozen = half precision for VAE, UNet and "
    "text tower only (docs/performance.md).",
    choices: tuple[str, ...] = PRECISION_CHOICES,
    default: str = "auto",
):
    return click.option("--dtype", default=default, type=click.Choice(choices), show_default=True, help=help)


def seed_option(help: str = "Seed of the posterior and t = 1 noise draws."):
    return click.option("--seed", default=0, show_default=True, type=int, help=help)


def noise_option(
    default: str = "sampled",
    help: str = "sampled: the official single step (posterior sample, t = 1 noise); none: posterior "
    "mean without t-noise.",
):
    return click.option("--noise", default=default, type=click.Choice(NOISE_MODES), show_default=True, help=help)


def caption_option(
    help: str = "auto (BLIP-2, as the authors), none (empty prompt) or a text [default: the model's setting].",
):
    return click.option("--caption", default=None, help=help)


def cmap_option():
    return click.option(
        "--cmap",
        default="Spectral_r",
        show_default=True,
        help="Matplotlib colour map indexed by nearness (its top end = nearest).",
    )


def max_size_option(
    help: str = "Long side used for processing (never upscaled; 0 = input size) "
    "[default: the model's, 1024 for PrimeDepth].",
):
    return click.option("--max-size", default=None, type=int, help=help)


def low_memory_option(
    help: str = "Lower peak memory (row-banded VAE encoder and heads, preimage freed as fused); "
    "same outputs, somewhat slower.",
):
    return click.option("--low-memory", is_flag=True, help=help)


def cache_dir_option():
    return click.option("--cache-dir", default=None, help="Hugging Face cache folder.")


def local_files_only_option():
    return click.option("--local-files-only", is_flag=True, help="Never touch the network.")


def ensemble_option(
    help: str = "Average with Depth Anything V2 after the common normalisation (the paper's best "
    "method); the ensemble becomes the output.",
):
    return click.option(
        "--ensemble", default=None, metavar="depth-anything-v2[-small|-base|-large][=HUB_ID_OR_FOLDER]", help=help
    )


def metric_option(
    help: str = "Depth in metres: fuse the prediction with a metric prior (robust scale and shift in disparity, "
    "a smooth low-frequency correction), write NAME_depth.npy (metres), a confidence map (NAME_confidence.png/.npy), "
    "the residual against the prior and NAME_metric.json (fit, focal length, licences); ply/glb use its camera.",
):
    return click.option(
        "--metric",
        default=None,
        metavar="depth-pro|depth-anything-v2-metric-indoor|outdoor[-small|-base|-large][=HUB_ID_OR_FOLDER]|points=FILE",
        help=help,
    )


def metric_correction_option():
    return click.option(
        "--metric-correction",
        is_flag=True,
        help="With --metric: after the global scale-and-shift fit, let the prior bend the map by a smooth "
        "low-frequency correction (when the prior's global shape is better than PrimeDepth's; docs/metric.md).",
    )


def commercial_safe_option():
    return click.option(
        "--commercial-safe",
        is_flag=True,
        help="Refuse weights whose licence does not allow commercial use (e.g. Depth Pro, Depth Anything V2 "
        "Base/Large); the licences are listed in docs/metric.md.",
    )


def camera_value(ctx, param, value: float | None) -> float | None:
    """Callback of ``--focal-px`` / ``--fov``: a non-finite or out-of-range value is a usage error as the command
    line is parsed, before any model loads."""
    if value is None:
        return value
    from ..outputs.geometry import check_camera

    try:
        check_camera(**{param.name: value})
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    return value


def shipped_configs() -> Path:
    """The configs that ship with the package (``configs/`` in a clone links to them)."""
    return Path(__file__).resolve().parents[1] / "configs"


def _existing_config(ctx, param, value: str) -> str:
    """A config file: a path, or the name of a shipped config (``pretrain``, ``ablations/tiny_full.json``, ...)."""
    if Path(value).is_file():
        return value
    shipped = shipped_configs()
    for candidate in (value, f"{value}.json", f"{value}.toml"):
        if (shipped / candidate).is_file():
            return str(shipped / candidate)
    files = [*shipped.rglob("*.json"), *shipped.rglob("*.toml")]
    names = sorted(p.relative_to(shipped).with_suffix("").as_posix() for p in files)
    raise click.BadParameter(f"{value}: no such file, nor a shipped config ({', '.join(names)})")


def config_argument():
    """``CONFIG``: the run's configuration file, or the name of one that ships with the package."""
    return click.argument("config", callback=_existing_config)


def overrides_option(example: str):
    """``--set KEY=VALUE`` (repeatable): config values overridden from the command line."""
    return click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE", help=f"Override a config value, e.g. {example}."
    )


def trust_pickle_option(what: str = "the checkpoint"):
    """``--trust-pickle``: the one way to allow full unpickling; without it only tensors are read (weights_only)."""
    return click.option(
        "--trust-pickle",
        is_flag=True,
        help=f"Allow full unpickling of {what} (runs code from the file!). Only for files you trust; by default "
        "only tensors are loaded (weights_only).",
    )


def device_argument(device: str) -> str | None:
    """``--device auto`` as the library spells it (None: let the pipeline choose)."""
    return None if device == "auto" else device


THREADS_HELP = (
    "CPU threads for torch (also $PRIMEDEPTH_THREADS) [default: torch's, one per physical core: the fastest for one "
    "process on an idle machine; when other jobs share the CPU, fewer (e.g. 1) can be several times faster]."
)


def _set_threads(ctx, param, value: int | None) -> int | None:
    if value is not None:
        from ..utils.threads import set_threads

        set_threads(value)
    return value


def threads_option(help: str = THREADS_HELP, expose_value: bool = False):
    """``--threads N``: torch's CPU threads, set as soon as the option is parsed (before torch is imported)."""
    return click.option(
        "--threads",
        default=None,
        type=click.IntRange(min=1),
        envvar="PRIMEDEPTH_THREADS",
        callback=_set_threads,
        expose_value=expose_value,
        is_eager=True,
        help=help,
    )


def _tiles_value(ctx, param, value):
    if value in ("auto", "off"):
        return value
    try:
        count = int(value)
    except ValueError:
        raise click.BadParameter(f"expected auto, off or a number of tiles, got {value!r}") from None
    if count < 0:
        raise click.BadParameter(f"expected auto, off or a number of tiles >= 0, got {count}")
    return count or "off"


def tiles_option(
    default: str = "auto",
    help: str = "Detail at the input's resolution: N tiles along the long side at the processing size, aligned to "
    "and merged onto the whole-image prediction; auto tiles inputs at least 4x the processing size "
    "(docs/high-resolution.md); off: one whole-image prediction, upsampled.",
):
    return click.option(
        "--tiles", default=default, show_default=True, metavar="auto|N|off", callback=_tiles_value, help=help
    )
