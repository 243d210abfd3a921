"""Captions that condition the frozen UNet: BLIP-2 OPT-2.7b like the authors, an empty prompt, or a given text.

Captioning is by far the most expensive step of the authors' inference, so captions are cached per image content
(SHA-256 of the decoded pixels) in a small JSON file. When BLIP-2 cannot be loaded (not cached and the hub
unreachable) automatic captions fall back to the empty prompt with one note, unless the captioner is ``required``
(an explicit ``--caption auto``), which makes it one clear error instead.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..constants import DEFAULT_CAPTIONER, cache_root
from ..utils.atomic import atomic_write_text
from ..utils.hub import cache_only, hub_failure, offline_reason
from ..utils.images import uint8_rgb

logger = logging.getLogger(__name__)


def default_cache_file() -> Path:
    return cache_root() / "captions.json"


class CaptionCache:
    """image-content hash -> caption, persisted atomically after every new entry."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, str] = {}
        if self.path and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                self.entries = {}  # a damaged cache is only a cache: start afresh

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def put(self, key: str, caption: str) -> None:
        self.entries[key] = caption
        if self.path:
            atomic_write_text(self.path, json.dumps(self.entries))


class CaptionModelUnavailableError(OSError):
    pass


class Blip2Captioner:
    """Loads BLIP-2 through transformers on first use (several GB; half precision on GPUs).

    ``required=False``: when the model cannot be loaded, :meth:`available` says so once (a ``note:`` line) and
    callers use the empty prompt; ``required=True``: it raises :class:`CaptionModelUnavailableError`.
    """

    def __init__(
        self,
        model_id: str = DEFAULT_CAPTIONER,
        device: str | torch.device = "cpu",
        cache_dir: str | None = None,
        local_files_only: bool = False,
        required: bool = False,
    ):
        self.model_id, self.device = model_id, torch.device(device)
        self.cache_dir, self.local_files_only, self.required = cache_dir, local_files_only, required
        self._model = self._processor = None
        self._unavailable: str | None = None

    def _load(self):
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        kwargs = dict(cache_dir=self.cache_dir, local_files_only=cache_only(self.local_files_only, self.model_id))
        try:
            self._processor = Blip2Processor.from_pretrained(self.model_id, **kwargs)
            self._model = Blip2ForConditionalGeneration.from_pretrained(self.model_id, dtype=dtype, **kwargs)
        except (OSError, ValueError) as err:  # ValueError: a path that is neither a folder nor a repo id
            where = f"the Hugging Face cache{' ' + self.cache_dir if self.cache_dir else ''}"
            why = (
                f"not in {where}, and {offline_reason()}"
                if kwargs["local_files_only"] and not self.local_files_only
                else f"looked in {where}{'' if kwargs['local_files_only'] else ' and on the hub'}: "
                f"{hub_failure(err, cache_only_now=kwargs['local_files_only'])}"
            )
            raise CaptionModelUnavailableError(
                f"caption model {self.model_id!r} is not available ({why})\n"
                "Download it once with network access, or run without automatic captions: --caption none "
                "(empty prompt) or --caption 'your text'."
            ) from None
        self._model.to(self.device).eval()

    def available(self) -> bool:
        """Load on first use; False (after one note) when the model cannot be had and captions are optional."""
        if self._model is not None:
            return True
        if self._unavailable is None:
            try:
                self._load()
                return True
            except CaptionModelUnavailableError as err:
                if self.required:
                    raise
                self._unavailable = str(err)
                logger.warning(
                    "note: %s; using the empty prompt instead (automatic captions need BLIP-2)",
                    self._unavailable.splitlines()[0],
                )
        elif self.required:
            raise CaptionModelUnavailableError(self._unavailable)
        return False

    @torch.no_grad()
    def __call__(self, images) -> list[str]:
        """``images``: list of float (3, H, W) tensors in [0, 1]."""
        if self._model is None:
            self._load()
        pil = [uint8_rgb(img) for img in images]
        inputs = self._processor(images=pil, return_tensors="pt").to(self.device, self._model.dtype)
        ids = self._model.generate(**inputs)
        return [c.strip() for c in self._processor.batch_decode(ids, skip_special_tokens=True)]
