"""Where pipeline weights come from: a local folder in our layout, or a Hugging Face hub repo in that layout.

Our layout (written by ``PrimeDepthPipeline.save_pretrained`` and ``primedepth convert``)::

    model_index.json   pipeline settings (noise schedule, timestep, default caption mode, text encoder source)
    unet/ vae/         frozen SD 2.x UNet and VAE (diffusers)
    text_encoder/ tokenizer/   24-layer OpenCLIP text tower (transformers), unless model_index names a hub id
    labeller/          fusion convs, refiner and heads (primedepth)
"""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path

from ..constants import cache_root

MODEL_INDEX = "model_index.json"
DEFAULT_MODEL_ENV = "PRIMEDEPTH_MODEL"
EMBEDDED_MODEL = "primedepth-mini"
EMBEDDED_NOTICE = (
    "full PrimeDepth weights not found ({where}); using the embedded PrimeDepth-mini, a small model "
    "trained by this project on rendered scenes, not photos (see README, 'Weights')"
)


class WeightsNotFoundError(FileNotFoundError):
    """A model's weights (PrimeDepth, a peer, an ensemble member) are neither in a local folder nor fetchable."""


@contextlib.contextmanager
def weights_or_error(name: str, source, hub_id: str, hub_kwargs: dict):
    """Around a library's ``from_pretrained`` of another model (an ensemble member, a metric prior): a missing
    folder, an unreachable hub or an unknown repo become one ``WeightsNotFoundError`` saying how to get them. A local
    folder is checked first (weights-only reads of its ``.bin`` files, shipped code noted as ignored), and a
    downloaded ``.bin`` that the library's weights-only load refuses is one ``ModelError``."""
    from .model_folder import ModelError, check_library_folder  # model_folder imports this module

    check_library_folder(source)
    try:
        yield
    except pickle.UnpicklingError:
        raise ModelError(
            f"{name} weights at {source} hold Python objects besides tensors; refused without unpickling them"
        ) from None
    except (OSError, ValueError) as err:  # ValueError: a path that is neither a folder nor a repo id
        from ..utils.hub import offline_reason

        local = hub_kwargs.get("local_files_only")
        where = "" if Path(source).exists() else (" (" + offline_reason() + ")" if local else "")
        raise WeightsNotFoundError(
            f"{name} weights not found at {source}{where}: {str(err).splitlines()[0]}\nDownload them once "
            f"with network access (e.g. `hf download {hub_id} --local-dir DIR`) and pass {name}=DIR."
        ) from None


def default_model_dir() -> Path:
    """Where ``primedepth convert`` puts the official weights unless told otherwise."""
    return Path(os.environ.get(DEFAULT_MODEL_ENV, cache_root() / "PrimeDepth"))


def embedded_model_dir() -> Path:
    """PrimeDepth-mini, shipped inside the package (docs/mini-model.md)."""
    return Path(__file__).resolve().parents[1] / "weights" / EMBEDDED_MODEL


HOW_TO_PROVIDE = (
    "How to provide weights: name the authors' hub repo (--model CVL-Heidelberg/PrimeDepth: downloaded and converted "
    "once), or convert a downloaded official checkpoint with\n"
    "  primedepth convert PrimeDepth.ckpt {default}\n"
    "(or any folder, then pass it with --model / from_pretrained(folder) or set ${env}). "
    "Offline, --model primedepth-mini is the small embedded model (rendered scenes) and --model tiny-random a random "
    "smoke-test model (meaningless depth)."
)


def _how_to() -> str:
    return HOW_TO_PROVIDE.format(default=default_model_dir(), env=DEFAULT_MODEL_ENV)


def resolve_model_dir(name: str | os.PathLike) -> Path:
    """A local folder holding ``model_index.json``: ``name`` itself or the embedded ``"primedepth-mini"`` (hub ids
    are resolved by ``hub_weights.resolve_model``)."""
    if str(name) == EMBEDDED_MODEL:
        path = embedded_model_dir()
        if not (path / MODEL_INDEX).is_file():
            raise WeightsNotFoundError(
                f"{path}: this installation of primedepth has no embedded {EMBEDDED_MODEL} "
                "weights (a source checkout without them, or a stripped wheel)."
            )
        return path
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / MODEL_INDEX).is_file():
            raise WeightsNotFoundError(f"{path}: not a PrimeDepth model folder (no {MODEL_INDEX}).\n{_how_to()}")
        return path
    raise WeightsNotFoundError(f"PrimeDepth weights not found: {path} does not exist.\n{_how_to()}")
