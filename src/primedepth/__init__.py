"""PrimeDepth: zero-shot monocular depth from the preimage of a frozen Stable Diffusion, in one step.

The public names are imported on first use, so that ``import primedepth`` (and ``primedepth --help``) does not pay
for torch and diffusers until a model is actually needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_PUBLIC = {
    "PrimeDepthPipeline": "primedepth.pipelines.pipeline",
    "PrimeDepthOutput": "primedepth.pipelines.output",
    "PrimeDepthLabeller": "primedepth.models.trained.labeller",
    "PrimeDepthImageProcessor": "primedepth.pipelines.image_processor",
    "ImageLoadError": "primedepth.pipelines.image_processor",
}

__all__ = ["PrimeDepthPipeline", "PrimeDepthOutput", "PrimeDepthLabeller", "PrimeDepthImageProcessor", "ImageLoadError"]

if TYPE_CHECKING:
    from .models.trained.labeller import PrimeDepthLabeller
    from .pipelines.image_processor import ImageLoadError, PrimeDepthImageProcessor
    from .pipelines.output import PrimeDepthOutput
    from .pipelines.pipeline import PrimeDepthPipeline


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'primedepth' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
