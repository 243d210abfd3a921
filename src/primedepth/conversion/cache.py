"""Where converted hub checkpoints live, and the models a run can use without the network, in the default order.

Kept free of torch, diffusers and the hub client: the web app lists its models and the CLI decides its default
before any heavy import. Downloading and converting is ``hub_weights``'s job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..constants import cache_root
from .loading import DEFAULT_MODEL_ENV, MODEL_INDEX, default_model_dir

OFFICIAL_REPO = "CVL-Heidelberg/PrimeDepth"


def conversion_cache() -> Path:
    return cache_root() / "hub"


def repo_cache(repo_id: str) -> Path:
    return conversion_cache() / repo_id.replace("/", "--")


def converted_dir(repo_id: str, commit: str, filename: str) -> Path:
    """Where the checkpoint ``filename`` of ``repo_id`` at ``commit`` is converted (one folder per file)."""
    stem = filename.rsplit(".", 1)[0].replace("/", "--")
    return repo_cache(repo_id) / commit / stem


def ref_file(repo_id: str, revision: str | None, filename: str | None) -> Path:
    """The small file remembering which commit (and converted folder) ``revision`` of ``repo_id`` resolved to."""
    name = (revision or "main").replace("/", "--") + (f"--{filename.replace('/', '--')}" if filename else "")
    return repo_cache(repo_id) / "refs" / f"{name}.json"


def cached_conversion(repo_id: str, revision: str | None = None, filename: str | None = None) -> Path | None:
    """The converted folder the last online run resolved ``repo_id`` (at ``revision``) to, if it is still there."""
    ref = ref_file(repo_id, revision, filename)
    try:
        target = Path(json.loads(ref.read_text())["folder"])
    except (OSError, ValueError, KeyError):
        return None
    return target if (target / MODEL_INDEX).is_file() else None


def local_default_models() -> list[str]:
    """The models the default policy picks from without the network, in its order: ``$PRIMEDEPTH_MODEL``, the
    converted weights in ``~/.cache/primedepth/PrimeDepth``, then the conversion of the official hub repo."""
    names = []
    if os.environ.get(DEFAULT_MODEL_ENV):
        names.append(os.environ[DEFAULT_MODEL_ENV])
    if (default_model_dir() / MODEL_INDEX).is_file():
        names.append(str(default_model_dir()))
    cached = cached_conversion(OFFICIAL_REPO)
    if cached is not None:
        names.append(str(cached))
    return names
