"""Checking a model folder before trusting it: ``model_index.json``, where its sub-models live, and that every
weight file holds the tensors its config asks for.

A folder downloaded from somewhere may be broken or hostile. Each problem becomes one ``ModelError`` naming the file,
the setting or tensor, and what was expected versus found, instead of a deep traceback from diffusers or
transformers, a misleading "Cannot copy out of meta tensor", or (worst) a silently random-initialised tensor.
Sub-models named in ``model_index.json`` must be folders inside the model folder or hub ids: absolute paths and
``..`` escapes are refused unless the caller allows them.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import struct
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ..utils import json_files
from .loading import MODEL_INDEX
from .model_index import is_our_module

logger = logging.getLogger(__name__)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # OWNER/NAME, matched whole (fullmatch)
# model_index.json settings: type check and allowed range of each (None: absent is fine)
_NUMBER = (int, float)
SETTINGS = {
    "scale_factor": (_NUMBER, lambda v: v > 0, "a positive number"),
    "beta_start": (_NUMBER, lambda v: 0 < v < 1, "a number in (0, 1)"),
    "beta_end": (_NUMBER, lambda v: 0 < v < 1, "a number in (0, 1)"),
    "num_train_timesteps": (int, lambda v: v > 0, "a positive integer"),
    "timestep": (int, lambda v: v >= 0, "a non-negative integer"),
}
OPTIONAL_SETTINGS = {
    "max_size": ((int, type(None)), lambda v: v is None or v >= 8, "an integer >= 8 or null"),
    "default_caption": (str, lambda v: True, "a string"),
    "text_encoder": (str, lambda v: bool(v), "a folder name or hub id"),
    "tokenizer": (str, lambda v: bool(v), "a folder name or hub id"),
    "source_checkpoint": (str, lambda v: True, "a string"),
}
# what a pipeline keeps of its index (the rest names its parts)
PIPELINE_SETTINGS = (*SETTINGS, "max_size", "default_caption", "source_checkpoint")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
# what diffusers / transformers read when a folder has no safetensors file: checked the same way
PICKLE_WEIGHT_FILES = ("diffusion_pytorch_model.bin", "pytorch_model.bin")
# settings asking a library to import code shipped with the model; the package never passes them on
CODE_KEYS = ("trust_remote_code", "custom_pipeline", "auto_map")


class ModelError(ValueError):
    """A model folder or one of its files is unusable; the message names the file and the problem."""


def read_json_object(path: Path) -> dict:
    """A JSON object from a model file ``path`` (ModelError if missing, not JSON, or not an object)."""
    value = json_files.read_json(path, "file", ModelError)
    if not isinstance(value, dict):
        raise ModelError(f"{path}: expected a JSON object, found a {type(value).__name__}")
    return value


def read_model_index(root: Path, complete: bool = True) -> dict:
    """``root/model_index.json``, its settings checked for type and range (``complete`` False: the step settings
    may be missing, for a reader that only needs the model's defaults)."""
    path = root / MODEL_INDEX
    return check_settings(read_json_object(path), path, complete)


def pipeline_settings(index: dict) -> dict:
    """The pipeline's step settings in a model index (``PIPELINE_SETTINGS``; parts and private keys left out)."""
    return {key: index[key] for key in PIPELINE_SETTINGS if key in index}


def check_settings(settings: dict, path: Path | str, complete: bool = True) -> dict:
    """``settings`` (a model index, or a pipeline's step settings) when each is of its type and in range, and none
    of ``SETTINGS`` is missing unless not ``complete``; otherwise a ModelError naming ``path``, the setting and what
    it must be."""
    for key, (types, ok, meaning) in {**SETTINGS, **OPTIONAL_SETTINGS}.items():
        if key not in settings:
            if key in SETTINGS and complete:
                raise ModelError(f"{path}: setting {key!r} missing (expected {meaning})")
            continue
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, types) or not ok(value):
            raise ModelError(f"{path}: setting {key!r} must be {meaning}, found {value!r}")
    if not all(key in settings for key in SETTINGS):
        return settings
    if settings["timestep"] >= settings["num_train_timesteps"]:
        raise ModelError(
            f"{path}: timestep {settings['timestep']} is outside the schedule of "
            f"{settings['num_train_timesteps']} steps"
        )
    if settings["beta_start"] > settings["beta_end"]:
        raise ModelError(f"{path}: beta_start {settings['beta_start']} exceeds beta_end {settings['beta_end']}")
    return settings


def component_source(root: Path, settings: dict, key: str, allow_external: bool = False) -> Path | str:
    """Where the sub-model ``key`` comes from: a folder inside ``root`` (symbolic links inside it are the folder's
    own business), or a hub id. An absolute path or one leaving ``root`` is refused unless ``allow_external``."""
    name = settings.get(key, key)
    where = f"{root / MODEL_INDEX}: {key} = {name!r}"
    relative = Path(name)
    escapes = relative.is_absolute() or ".." in relative.parts or name.startswith("~")
    if escapes and not allow_external:
        raise ModelError(
            f"{where} points outside the model folder; sub-models must be folders inside it or hub "
            "ids (pass allow_external_components=True to from_pretrained to allow this)"
        )
    if escapes:
        return Path(name).expanduser()
    if (root / relative).is_dir():
        return root / relative
    if HUB_ID.fullmatch(name):
        return name
    raise ModelError(f"{where}: no such folder in the model folder, and not a hub id")


def _weight_files(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """The weight files a loader reads for ``names``: one of them, or the shards listed by its ``.index.json``."""
    files = [folder / name for name in names if (folder / name).is_file()]
    for index in (folder / f"{name}.index.json" for name in names):
        if index.is_file():
            weight_map = read_json_object(index).get("weight_map", {})
            if not isinstance(weight_map, dict):
                raise ModelError(f"{index}: 'weight_map' must be a JSON object")
            files = [folder / f for f in sorted(set(map(str, weight_map.values())))]
    return files


def _safetensors_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    try:
        with safe_open(str(file), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError) as err:
        raise ModelError(f"{file}: not a readable safetensors file ({err})") from None


def _pickle_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a ``torch.save`` weight file, read weights-only (memory-mapped where the format allows):
    a file holding other Python objects is refused without unpickling them, as the libraries would do later
    with a less clear message."""
    try:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            state = torch.load(file, map_location="cpu", weights_only=True)  # the legacy format cannot be mapped
    except pickle.UnpicklingError:
        raise ModelError(
            f"{file}: holds Python objects besides tensors; refused without unpickling it (a weight file needs "
            "tensors only; convert it to safetensors if you trust it)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, struct.error) as err:
        raise ModelError(f"{file}: not a readable PyTorch weight file ({err})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{file}: expected a dict of tensors, found {type(state).__name__} with other values")
    return {str(k): tuple(v.shape) for k, v in state.items()}


def _file_shapes(folder: Path) -> tuple[Path, dict[str, tuple[int, ...]]] | None:
    """(weight file, tensor name -> shape) of the files the loader will read: safetensors (headers only) if any,
    else ``.bin`` files (read weights-only); None if there is neither."""
    for names, read in ((WEIGHT_FILES, _safetensors_shapes), (PICKLE_WEIGHT_FILES, _pickle_shapes)):
        files = _weight_files(folder, names)
        if files:
            shapes = {}
            for file in files:
                shapes.update(read(file))
            return files[0] if len(files) == 1 else folder, shapes
    return None


def check_weights(folder: Path, expected: dict[str, torch.Size], what: str) -> None:
    """Every tensor of ``expected`` (name -> shape, a model's state dict) is in the folder's weight file with that
    shape; raises ModelError listing what is missing or mis-shaped."""
    found = _file_shapes(folder)
    if found is None:
        return  # no weight file: the loader reports it
    file, shapes = found
    # transformers loads weights saved with or without the model's base prefix (e.g. a CLIPModel's text half under
    # ``text_model.``), so a tensor counts as present under either spelling.
    prefixes = {k.split(".", 1)[0] + "." for k in shapes if "." in k}

    def stored_shape(key: str):
        for name in (key, *(p + key for p in prefixes), key.split(".", 1)[-1]):
            if name in shapes:
                return shapes[name]
        return None

    problems = []
    for key, shape in expected.items():
        stored = stored_shape(key)
        if stored is None:
            problems.append(f"tensor {key} missing (expected shape {tuple(shape)})")
        elif stored != tuple(shape):
            problems.append(f"tensor {key} has shape {stored}, expected {tuple(shape)}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ModelError(
            f"{file}: {what} weights do not match {folder / 'config.json'}: " + "; ".join(problems[:5]) + more
        )


def load_checked(
    what: str, folder: Path | str, build_empty: Callable[[], torch.nn.Module], load: Callable[[], torch.nn.Module]
) -> torch.nn.Module:
    """``load()`` the sub-model ``what`` after checking a local ``folder``'s weights against the model that
    ``build_empty()`` makes from its config (built on the meta device: no memory, no time). Errors become one
    ModelError naming the folder."""
    if isinstance(folder, Path):
        if not (folder / "config.json").is_file():
            raise ModelError(f"{folder}: {what} folder has no config.json")
        read_json_object(folder / "config.json")
        try:
            with torch.device("meta"):
                expected = {k: v.shape for k, v in build_empty().state_dict().items()}
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            raise ModelError(f"{folder / 'config.json'}: not a valid {what} config ({err})") from None
        check_weights(folder, expected, what)
    try:
        return load()
    except (ValueError, RuntimeError, NotImplementedError, KeyError, TypeError) as err:
        raise ModelError(f"{folder}: {what} could not be loaded ({err})") from None


def _folders(root: Path) -> list[Path]:
    """``root`` and its sub-model folders (one level, as the libraries lay models out)."""
    return [root, *sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]


def ignored_code(root: Path) -> list[str]:
    """What in ``root`` asks for code to be run (``trust_remote_code`` / ``custom_pipeline`` / ``auto_map`` in its
    JSON files, ``.py`` files other than the modules ``model_index`` writes), relative to ``root``."""
    found = []
    for folder in _folders(root):
        for path in sorted(folder.glob("*.json")):
            try:
                value = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # the loader names a broken JSON file
            if isinstance(value, dict):
                found += [f"{key} in {path.relative_to(root)}" for key in CODE_KEYS if key in value]
        found += [str(p.relative_to(root)) for p in sorted(folder.glob("*.py")) if not is_our_module(p)]
    return found


def note_ignored_code(root: Path) -> None:
    """One note (a logged warning) if ``root`` ships code or asks for it to run: it is ignored, never imported."""
    found = ignored_code(root)
    if found:
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        logger.warning(
            "note: %s: ignored %s%s (primedepth never imports or runs code shipped with a model)",
            root,
            ", ".join(found[:5]),
            more,
        )


def check_library_folder(root: str | Path) -> None:
    """Check a local model folder handed to diffusers or transformers as it is (a peer model, an ensemble member,
    a labeller): every ``.bin`` weight file they would read (no safetensors beside it) is read weights-only first,
    so that a file holding Python objects is one ``ModelError`` naming it, not a deep ``UnpicklingError``; code it
    ships is noted as ignored. Hub ids are left to the hub client."""
    root = Path(root)
    if not root.is_dir():
        return
    for folder in _folders(root):
        if not _weight_files(folder, WEIGHT_FILES):
            for file in _weight_files(folder, PICKLE_WEIGHT_FILES):
                _pickle_shapes(file)
    note_ignored_code(root)
