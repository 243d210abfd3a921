"""The typed result of ``PrimeDepthPipeline``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INVERSE_DEPTH_MEANING = (
    "affine-invariant inverse depth (disparity-like): larger values are closer; the unknown scale and shift must be "
    "fitted against metric data (e.g. least squares on 1/depth) before reading values as 1/metres"
)


@dataclass
class PrimeDepthOutput:
    """Per input image: ``inverse_depth`` (float32 H x W), ``segmentation`` (uint8 H x W ADE20K-150 class ids, when
    asked for), the caption that conditioned the model, and run metadata (what the values mean, sizes, seed).
    With an ensemble, ``inverse_depth`` is the ensemble and ``members`` holds each model's own maps by name. With
    a metric prior, ``metric`` holds per image the fused depth in metres, its confidence and the camera
    (``pipelines.metric.MetricResult``)."""

    inverse_depth: list[np.ndarray]
    segmentation: list[np.ndarray] | None = None
    captions: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    members: dict[str, list[np.ndarray]] | None = None
    metric: list | None = None
