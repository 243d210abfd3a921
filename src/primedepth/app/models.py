"""The depth models a running app offers, and one loaded pipeline per model shared by every visitor.

Pipelines load through ``PrimeDepthPipeline.from_pretrained`` exactly as ``primedepth predict`` loads them, and every
call goes through one lock: the app's queue already runs one prediction at a time, and the lock keeps that true for
any other caller of the same registry (one model on one device at a time, whatever the number of visitors).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..constants import TINY_RANDOM_CAVEAT
from ..conversion.cache import local_default_models
from ..conversion.loading import EMBEDDED_MODEL, MODEL_INDEX, embedded_model_dir
from ..conversion.model_folder import read_model_index

if TYPE_CHECKING:
    from ..pipelines.pipeline import PrimeDepthPipeline

EMBEDDED_CAVEAT = (
    "PrimeDepth-mini is the small model embedded in this package, trained on rendered scenes (not "
    "photos) at 64 px: expect coarse depth on real photographs."
)


@dataclass(frozen=True)
class ModelChoice:
    """A model the page offers: ``name`` is what ``from_pretrained`` takes, ``caveat`` is shown with every result."""

    name: str
    caveat: str | None
    default_caption: str
    default_max_size: int


def _settings(name: str) -> dict:
    """``model_index.json`` of a local model folder, checked (empty for hub ids and tiny-random: their defaults
    apply)."""
    folder = embedded_model_dir() if name == EMBEDDED_MODEL else Path(name).expanduser()
    return read_model_index(folder, complete=False) if (folder / MODEL_INDEX).is_file() else {}


def model_choice(name: str) -> ModelChoice:
    caveat = {EMBEDDED_MODEL: EMBEDDED_CAVEAT, "tiny-random": TINY_RANDOM_CAVEAT}.get(name)
    settings = _settings(name)
    return ModelChoice(name, caveat, settings.get("default_caption", "auto"), settings.get("max_size", 1024))


def available_models(named: list[str] | tuple[str, ...] = ()) -> list[ModelChoice]:
    """The models named on the command line first, then those ``primedepth predict`` would pick without the network
    (``$PRIMEDEPTH_MODEL``, the converted official weights, the conversion of the official hub repo), then the
    embedded PrimeDepth-mini when this installation has it; duplicates dropped."""
    names = [*named, *local_default_models()]
    if (embedded_model_dir() / MODEL_INDEX).is_file():
        names.append(EMBEDDED_MODEL)
    return [model_choice(name) for name in dict.fromkeys(names)]


class ModelRegistry:
    """Loads each offered model on first use (keeping the ``keep`` most recently used) and runs it under one lock."""

    def __init__(
        self,
        choices: list[ModelChoice],
        device: str | None = None,
        keep: int = 2,
        local_files_only: bool = False,
        ensemble_member=None,
        precision: str = "auto",
        metric_prior=None,
    ):
        """``ensemble_member``: a loaded ``pipelines.depth_anything.DepthAnything`` to offer the ensemble with;
        ``precision``: as ``primedepth predict --dtype`` (``auto`` by default, like the CLI); ``metric_prior``: a
        loaded ``pipelines.metric`` prior to offer depth in metres with."""
        if not choices:
            raise ValueError("no model to offer: name one with --model (a folder, a hub id or tiny-random)")
        self.choices = {choice.name: choice for choice in choices}
        self.device = device
        self.keep = keep
        self.local_files_only = local_files_only
        self.ensemble_member = ensemble_member
        self.metric_prior = metric_prior
        self.precision = precision
        self.lock = threading.Lock()
        self._loaded: OrderedDict[str, PrimeDepthPipeline] = OrderedDict()

    @property
    def default(self) -> ModelChoice:
        return next(iter(self.choices.values()))

    def choice(self, name: str) -> ModelChoice:
        if name not in self.choices:
            raise ValueError(f"unknown model {name!r}; this app offers {', '.join(self.choices)}")
        return self.choices[name]

    def _pipeline(self, name: str) -> PrimeDepthPipeline:
        # Imported on first load, in the warm-up thread: diffusers and transformers take ~3 s to import, and the page
        # answers before they are needed (measured: 11.3 s to the first HTTP 200 with them at the top, idle machine).
        from ..pipelines.captioning import default_cache_file
        from ..pipelines.pipeline import PrimeDepthPipeline

        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        while len(self._loaded) >= self.keep:
            self._loaded.popitem(last=False)
        pipe = PrimeDepthPipeline.from_pretrained(
            name,
            device=self.device,
            torch_dtype=torch.float32,
            local_files_only=self.local_files_only,
            caption_cache_file=default_cache_file(),
        )
        pipe.prepare_for_inference(self.precision)
        self._loaded[name] = pipe
        return pipe

    def run(self, name: str, work):
        """``work(pipe)`` with the pipeline of model ``name``, loaded if needed, holding the device lock."""
        self.choice(name)
        with self.lock:
            return work(self._pipeline(name))

    def warm_up(self) -> None:
        """Load the default model now (the app calls this in a background thread while the page starts)."""
        with self.lock:
            self._pipeline(self.default.name)
