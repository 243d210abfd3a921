"""Captions that condition the frozen UNet: BLIP-2 OPT-2.7b like the authors, an empty prompt, or a given text.

Captioning is by far the most expensive step of the authors' inference, so captions are cached per image content
(SHA-256 of the decoded pixels) in a small JSON file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..utils.atomic import atomic_write_text

DEFAULT_CAPTIONER = "Salesforce/blip2-opt-2.7b"


def default_cache_file() -> Path:
    root = Path(os.environ.get("PRIMEDEPTH_CACHE", Path.home() / ".cache" / "primedepth"))
    return root / "captions.json"


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


class Blip2Captioner:
    """Loads BLIP-2 through transformers on first use (several GB; half precision on GPUs)."""

    def __init__(self, model_id: str = DEFAULT_CAPTIONER, device: str | torch.device = "cpu",
                 cache_dir: str | None = None, local_files_only: bool = False):
        self.model_id, self.device = model_id, torch.device(device)
        self.cache_dir, self.local_files_only = cache_dir, local_files_only
        self._model = self._processor = None

    def _load(self):
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        kwargs = dict(cache_dir=self.cache_dir, local_files_only=self.local_files_only)
        try:
            self._processor = Blip2Processor.from_pretrained(self.model_id, **kwargs)
            self._model = Blip2ForConditionalGeneration.from_pretrained(self.model_id, torch_dtype=dtype, **kwargs)
        except OSError as err:
            raise OSError(
                f"caption model {self.model_id!r} is not available (looked in the Hugging Face cache"
                f"{' ' + self.cache_dir if self.cache_dir else ''} and on the hub): {err}\n"
                "Download it once with network access, or run without automatic captions: --caption none "
                "(empty prompt) or --caption 'your text'."
            ) from None
        self._model.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, images) -> list[str]:
        """``images``: list of float (3, H, W) tensors in [0, 1]."""
        if self._model is None:
            self._load()
        pil = [(img.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy() for img in images]
        inputs = self._processor(images=pil, return_tensors="pt").to(self.device, self._model.dtype)
        ids = self._model.generate(**inputs)
        return [c.strip() for c in self._processor.batch_decode(ids, skip_special_tokens=True)]
