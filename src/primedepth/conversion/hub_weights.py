"""PrimeDepth weights named by a hub id: a repo in our layout, or a repo holding an official checkpoint.

An official repo (e.g. the authors' ``CVL-Heidelberg/PrimeDepth``) holds a Lightning ``.ckpt``, not our folder
layout. It is found through the hub's file listing (never a guessed name), downloaded with ``huggingface_hub``
(its cache, ``HF_HOME``, ``HF_ENDPOINT``, resumable downloads), its configuration is inferred from its tensor shapes,
and it is converted once into ``$PRIMEDEPTH_CACHE/hub/<owner>--<name>/<commit>/<file>``. A small reference file
(``refs/<revision>.json``) remembers which commit a revision was, so later runs need no network.

``resolve_model`` is what ``PrimeDepthPipeline.from_pretrained`` calls for any model name; ``default_model`` picks
the model when none is named.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from ..models.frozen.text_encoder import DEFAULT_TEXT_ENCODER
from ..utils.atomic import atomic_write
from ..utils.hub import cache_only, offline_reason
from .cache import OFFICIAL_REPO, cached_conversion, conversion_cache, converted_dir, ref_file
from .convert import convert_official_checkpoint
from .loading import (
    DEFAULT_MODEL_ENV,
    EMBEDDED_MODEL,
    EMBEDDED_NOTICE,
    MODEL_INDEX,
    WeightsNotFoundError,
    default_model_dir,
    resolve_model_dir,
)
from .model_folder import HUB_ID
from .official_checkpoint import UntrustedCheckpointError

logger = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors")


def split_hub_id(name: str) -> tuple[str, str | None] | None:
    """``OWNER/NAME`` or ``OWNER/NAME/path/in/repo.ckpt`` -> (repo id, file or None); None if it is no hub id."""
    parts = str(name).split("/")
    if str(name).startswith((".", "/", "~")) or len(parts) < 2 or not HUB_ID.fullmatch("/".join(parts[:2])):
        return None
    if len(parts) == 2:
        return "/".join(parts), None
    filename = "/".join(parts[2:])
    return ("/".join(parts[:2]), filename) if filename.endswith(CHECKPOINT_SUFFIXES) else None


def human_size(n: int | None) -> str:
    if n is None:
        return "size unknown"
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def find_official_checkpoint(repo_id: str, siblings: dict[str, int | None], filename: str | None) -> str:
    """The one checkpoint file of a repo listing (name -> size), or ``filename`` when given and listed."""
    if filename is not None:
        if filename not in siblings:
            raise WeightsNotFoundError(f"{repo_id}: the repo has no file {filename!r}")
        return filename
    candidates = sorted(f for f in siblings if f.endswith(CHECKPOINT_SUFFIXES))
    if not candidates:
        raise WeightsNotFoundError(
            f"{repo_id}: the repo holds neither a PrimeDepth model folder ({MODEL_INDEX}) "
            f"nor an official checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})"
        )
    if len(candidates) > 1:
        raise WeightsNotFoundError(
            f"{repo_id}: the repo holds {len(candidates)} checkpoints ("
            + ", ".join(candidates)
            + f"); choose one with {repo_id}/<file>, e.g. "
            f"--model {repo_id}/{candidates[0]}"
        )
    return candidates[0]


def download_official_checkpoint(
    repo_id: str, filename: str | None = None, *, revision: str | None = None, cache_dir: str | None = None
) -> tuple[Path, str, str, dict[str, int | None]]:
    """(local file, commit, file name in the repo, listing) of the repo's official checkpoint, downloaded into the
    Hugging Face cache (resumed when a previous download was interrupted). Needs the hub."""
    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    except HfHubHTTPError as err:
        raise WeightsNotFoundError(
            f"{repo_id}: the hub {constants.ENDPOINT} does not serve this repo "
            f"({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from None
    siblings = {s.rfilename: s.size for s in info.siblings or []}
    if MODEL_INDEX in siblings and filename is None:
        return Path(), info.sha, MODEL_INDEX, siblings
    name = find_official_checkpoint(repo_id, siblings, filename)
    local = hf_hub_download(repo_id, name, revision=info.sha, cache_dir=cache_dir, dry_run=True)
    if not getattr(local, "is_cached", False):
        logger.warning(
            "note: downloading %s/%s (%s) into the Hugging Face cache %s",
            repo_id,
            name,
            human_size(siblings.get(name)),
            cache_dir or constants.HF_HUB_CACHE,
        )
    path = hf_hub_download(repo_id, name, revision=info.sha, cache_dir=cache_dir)
    return Path(path), info.sha, name, siblings


def resolve_hub_model(
    name: str,
    *,
    revision: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
    trust_pickle: bool = False,
    text_encoder: str = DEFAULT_TEXT_ENCODER,
    tokenizer: str | None = None,
) -> Path:
    """A local model folder for the hub id ``name`` (see the module docstring); converts on first use."""
    repo_id, filename = split_hub_id(name)
    if cache_only(local_files_only):
        cached = cached_conversion(repo_id, revision, filename)
        if cached is not None:
            return cached
        try:
            snapshot = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True))
        except Exception:  # nothing of this repo in the Hugging Face cache (the error type varies by cause)
            snapshot = None
        if snapshot is not None and (snapshot / MODEL_INDEX).is_file():
            return snapshot
        raise WeightsNotFoundError(
            f"PrimeDepth weights not found: {name!r} is neither a local folder nor in the caches "
            f"({conversion_cache()}, {cache_dir or constants.HF_HUB_CACHE}), and "
            f"{'local_files_only is set' if local_files_only else offline_reason()}. Run once "
            "with network access to download and convert it."
        )
    checkpoint, commit, file, _ = download_official_checkpoint(
        repo_id, filename, revision=revision, cache_dir=cache_dir
    )
    if file == MODEL_INDEX:
        return Path(snapshot_download(repo_id, revision=commit, cache_dir=cache_dir))
    target = converted_dir(repo_id, commit, file)
    if not (target / MODEL_INDEX).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            report = convert_official_checkpoint(
                checkpoint,
                target,
                trust_pickle=trust_pickle,
                text_encoder=text_encoder,
                tokenizer=tokenizer,
                cache_dir=cache_dir,
                source=f"{repo_id}/{file}",
            )
        except UntrustedCheckpointError:  # its text names the library's flag; the command to run is convert's
            raise WeightsNotFoundError(
                f"{repo_id}/{file}: the checkpoint holds Python objects besides tensors, and unpickling them can "
                f"run arbitrary code; if you trust it, `primedepth convert {name} --trust-pickle` converts it "
                f"into the cache, where --model {name} finds it"
            ) from None
        logger.warning("note: converted %s/%s (commit %s) into %s", repo_id, file, commit[:12], target)
        for note in report.notes:
            logger.warning("note: %s", note)
    ref = ref_file(repo_id, revision, filename)
    ref.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(ref, json.dumps({"commit": commit, "file": file, "folder": str(target)}).encode())
    return target


def resolve_model(name: str | os.PathLike, *, cache_dir: str | None = None, local_files_only: bool = False) -> Path:
    """A local folder holding ``model_index.json`` for a folder, ``"primedepth-mini"`` or a hub id."""
    if not Path(name).expanduser().exists() and str(name) != EMBEDDED_MODEL and split_hub_id(str(name)):
        return resolve_hub_model(str(name), cache_dir=cache_dir, local_files_only=local_files_only)
    return resolve_model_dir(name)


def default_model(cache_dir: str | None = None, local_files_only: bool = False) -> tuple[str, str | None]:
    """The model used when none is named, and a one-line note when it is not the full model. In order:
    ``$PRIMEDEPTH_MODEL`` (an error if it names nothing), a converted model in the cache, the official weights
    from the hub when it can be reached (downloaded and converted once), else the embedded PrimeDepth-mini."""
    named = os.environ.get(DEFAULT_MODEL_ENV)
    if named:
        if not Path(named).expanduser().exists() and not split_hub_id(named):
            raise WeightsNotFoundError(f"${DEFAULT_MODEL_ENV}={named}: no such model folder or hub id")
        return named, None
    full = default_model_dir()
    if (full / MODEL_INDEX).is_file():
        return str(full), None
    cached = cached_conversion(OFFICIAL_REPO)
    if cached is not None:
        return str(cached), None
    if cache_only(local_files_only):
        return EMBEDDED_MODEL, EMBEDDED_NOTICE.format(
            where=f"{full}, no converted {OFFICIAL_REPO} in {conversion_cache()}, and {offline_reason()}"
        )
    logger.warning("note: no converted PrimeDepth weights in %s; fetching the official %s once", full, OFFICIAL_REPO)
    try:
        return str(resolve_hub_model(OFFICIAL_REPO, cache_dir=cache_dir)), None
    except (WeightsNotFoundError, ValueError, OSError) as err:
        return EMBEDDED_MODEL, EMBEDDED_NOTICE.format(where=f"{OFFICIAL_REPO} could not be used: {err}")
