"""Where pipeline weights come from: a local folder in our layout, or a Hugging Face hub repo in that layout.

Our layout (written by ``PrimeDepthPipeline.save_pretrained`` and ``primedepth convert``)::

    model_index.json   pipeline settings (noise schedule, timestep, default caption mode, text encoder source)
    unet/ vae/         frozen SD 2.x UNet and VAE (diffusers)
    text_encoder/ tokenizer/   24-layer OpenCLIP text tower (transformers), unless model_index names a hub id
    labeller/          fusion convs, refiner and heads (primedepth)
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_INDEX = "model_index.json"
DEFAULT_MODEL_ENV = "PRIMEDEPTH_MODEL"
EMBEDDED_MODEL = "primedepth-mini"
EMBEDDED_NOTICE = ("full PrimeDepth weights not found ({where}); using the embedded PrimeDepth-mini, a small model "
                   "trained by this project on rendered scenes, not photos (see README, 'Weights')")


class WeightsNotFoundError(FileNotFoundError):
    pass


def default_model_dir() -> Path:
    """Where ``primedepth convert`` puts the official weights unless told otherwise."""
    root = Path(os.environ.get("PRIMEDEPTH_CACHE", Path.home() / ".cache" / "primedepth"))
    return Path(os.environ.get(DEFAULT_MODEL_ENV, root / "PrimeDepth"))


def embedded_model_dir() -> Path:
    """PrimeDepth-mini, shipped inside the package (docs/mini-model.md)."""
    return Path(__file__).resolve().parents[1] / "weights" / EMBEDDED_MODEL


def default_model() -> tuple[str, str | None]:
    """The model used when none is named: the converted official weights if present, else PrimeDepth-mini with a
    one-line notice saying so (None when the full weights are used)."""
    full = default_model_dir()
    if (full / MODEL_INDEX).is_file():
        return str(full), None
    return EMBEDDED_MODEL, EMBEDDED_NOTICE.format(where=full)


HOW_TO_PROVIDE = (
    "How to provide weights: download the official checkpoint (PrimeDepth.ckpt, see the authors' README) and run\n"
    "  primedepth convert PrimeDepth.ckpt {default}\n"
    "(or any folder, then pass it with --model / from_pretrained(folder) or set ${env}). "
    "Offline, --model primedepth-mini is the small embedded model (rendered scenes) and --model tiny-random a random "
    "smoke-test model (meaningless depth)."
)


def _how_to() -> str:
    return HOW_TO_PROVIDE.format(default=default_model_dir(), env=DEFAULT_MODEL_ENV)


def resolve_model_dir(name: str | os.PathLike, cache_dir: str | None = None, local_files_only: bool = False) -> Path:
    """A local folder holding ``model_index.json``: ``name`` itself, the embedded ``"primedepth-mini"``, or a hub
    snapshot of the repo ``name``."""
    if str(name) == EMBEDDED_MODEL:
        path = embedded_model_dir()
        if not (path / MODEL_INDEX).is_file():
            raise WeightsNotFoundError(f"{path}: this installation of primedepth has no embedded {EMBEDDED_MODEL} "
                                       "weights (a source checkout without them, or a stripped wheel).")
        return path
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / MODEL_INDEX).is_file():
            raise WeightsNotFoundError(f"{path}: not a PrimeDepth model folder (no {MODEL_INDEX}).\n{_how_to()}")
        return path
    looks_like_repo = str(name).count("/") == 1 and not str(name).startswith((".", "/", "~"))
    if not looks_like_repo:
        raise WeightsNotFoundError(f"PrimeDepth weights not found: {path} does not exist.\n{_how_to()}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    try:
        return Path(snapshot_download(str(name), cache_dir=cache_dir, local_files_only=local_files_only))
    except Exception as err:  # offline, missing repo, gated repo: all end the same way for the user
        where = cache_dir or HF_HUB_CACHE
        raise WeightsNotFoundError(
            f"PrimeDepth weights not found: no local folder {path}, and the Hugging Face repo {name!r} could not be "
            f"fetched into or found in the cache {where} ({type(err).__name__}: {err}).\n{_how_to()}"
        ) from None
