"""The labeller classes by name (the ``_class_name`` of their ``config.json``), imported when first asked for so
that what only reads configs (the ablation registry, ``training.config``) needs no torch."""

from __future__ import annotations


def labeller_classes() -> dict[str, type]:
    from .block_preimage import BlockPreimageLabeller
    from .labeller import PrimeDepthLabeller

    return {cls.__name__: cls for cls in (PrimeDepthLabeller, BlockPreimageLabeller)}
