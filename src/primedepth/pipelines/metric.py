"""Metric priors for ``metric=`` / ``--metric``: models (or points) that know metres, fused with PrimeDepth's
affine-invariant inverse depth by ``outputs.metric_fusion``.

- ``depth-pro``: Apple's Depth Pro through transformers ``DepthProForDepthEstimation``. Its head predicts a
  canonical inverse depth and its field-of-view head the horizontal field of view; metric depth is
  ``1 / (canonical * width / focal_px)`` as in Depth Pro's own post-processing, with the focal length the caller
  knows (EXIF, ``--focal-px``) or else the one the FoV head estimates.
- ``depth-anything-v2-metric-indoor|outdoor[-small|-base|-large]``: Depth Anything V2 fine-tuned for metric depth
  (Hypersim indoor, Virtual KITTI 2 outdoor) through transformers (``depth_estimation_type="metric"``); metres
  directly, no focal length.
- ``primedepth-mini-metric``: the small metric prior of the miniature world, shipped with the package (rendered
  scenes only: it shows metres offline with PrimeDepth-mini, it is not a model for photos).
- ``points=FILE``: sparse metric depths (``.npy`` / KITTI ``.png`` / ``.csv``, see ``outputs.alignment``).

Each model name takes ``=HUB_ID_OR_FOLDER`` for weights elsewhere, like the ensemble members.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..conversion.loading import WeightsNotFoundError, weights_or_error
from ..licences import licence_metadata
from ..outputs.alignment import read_sparse_depth
from ..outputs.geometry import Intrinsics, intrinsics_for
from ..outputs.metric_fusion import MetricFusion, fuse_with_prior
from ..utils.hub import cache_only
from .depth_anything import DepthAnything

DEPTH_PRO = {"depth-pro": "apple/DepthPro-hf"}
DEPTH_ANYTHING_V2_METRIC = {
    f"depth-anything-v2-metric-{scene}-{size}": f"depth-anything/Depth-Anything-V2-Metric-{scene.title()}-"
    f"{size.title()}-hf"
    for scene in ("indoor", "outdoor")
    for size in ("small", "base", "large")
}
for _scene in ("indoor", "outdoor"):
    DEPTH_ANYTHING_V2_METRIC[f"depth-anything-v2-metric-{_scene}"] = DEPTH_ANYTHING_V2_METRIC[
        f"depth-anything-v2-metric-{_scene}-large"
    ]
MINI_METRIC = "primedepth-mini-metric"
METRIC_PRIORS = {**DEPTH_PRO, **DEPTH_ANYTHING_V2_METRIC, MINI_METRIC: "embedded"}
PRIOR_CHOICES = "depth-pro, depth-anything-v2-metric-indoor|outdoor[-small|-base|-large] (each =HUB_ID_OR_FOLDER "
PRIOR_CHOICES += f"optional), {MINI_METRIC} (embedded, rendered scenes) or points=FILE"


@dataclass
class PriorPrediction:
    """Metric depth (float32 metres, H x W; 0 = no value) and, when the prior estimates it, the focal length in
    pixels for this H x W image."""

    depth: np.ndarray
    focal_px: float | None = None
    dense: bool = True  # a map with a value at (almost) every pixel, not sparse points


def parse_prior(spec: str) -> tuple[str, str]:
    """``NAME[=HUB_ID_OR_FOLDER]`` or ``points=FILE`` -> (name, source)."""
    name, _, source = spec.partition("=")
    if name == "points":
        if not source:
            raise ValueError("points needs a file: --metric points=FILE (.npy, .png or .csv)")
        return name, source
    if name not in METRIC_PRIORS:
        raise ValueError(f"unknown metric prior {name!r}; choose {PRIOR_CHOICES}")
    return name, source or METRIC_PRIORS[name]


def depth_pro_pixel_values(rgb: np.ndarray, settings: dict) -> torch.Tensor:
    """(1, 3, h, w) input of Depth Pro for an H x W x 3 uint8 image as ``DepthProImageProcessor`` prepares it
    (rescale, normalise with the saved mean and std, then bilinear resize without antialias to the saved size),
    from the saved processor ``settings``: that processor class needs torchvision, which this package does not."""
    size = settings.get("size", {"height": 1536, "width": 1536})
    mean = torch.tensor(settings.get("image_mean", [0.5] * 3), dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(settings.get("image_std", [0.5] * 3), dtype=torch.float32).view(1, 3, 1, 1)
    x = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    x = (x * float(settings.get("rescale_factor", 1 / 255)) - mean) / std
    return torch.nn.functional.interpolate(
        x, size=(int(size["height"]), int(size["width"])), mode="bilinear", align_corners=False, antialias=False
    )


class DepthProPrior:
    """Depth Pro: metric depth and the field of view of an image."""

    def __init__(self, source, name="depth-pro", device="cpu", cache_dir=None, local_files_only=False):
        from transformers import DepthProForDepthEstimation
        from transformers.image_processing_utils import ImageProcessingMixin

        self.name, self.source, self.device = name, str(source), torch.device(device)
        kwargs = dict(cache_dir=cache_dir, local_files_only=cache_only(local_files_only, source))
        with weights_or_error(name, source, DEPTH_PRO["depth-pro"], kwargs):
            self.settings, _ = ImageProcessingMixin.get_image_processor_dict(str(source), **kwargs)
            self.model = DepthProForDepthEstimation.from_pretrained(source, **kwargs)
        self.model.to(self.device).eval()

    @torch.no_grad()
    def predict(self, rgb: np.ndarray, size: tuple[int, int] | None = None, focal_px: float | None = None):
        """Metric depth of ``size`` (default: the image's); ``focal_px`` (for that size) replaces the FoV head's
        estimate, as in Depth Pro's own inference when the focal length is known."""
        h, w = size or rgb.shape[:2]
        out = self.model(pixel_values=depth_pro_pixel_values(rgb, self.settings).to(self.device))
        estimated = None
        fov = None if out.field_of_view is None else float(out.field_of_view[0])
        if fov is not None and 0 < fov < 180:  # degrees across the width
            estimated = 0.5 * w / math.tan(math.radians(0.5 * fov))
        focal = focal_px or estimated
        if focal is None:
            raise ValueError(
                f"{self.source}: no usable field of view (FoV head {'absent' if fov is None else f'gave {fov:g} deg'})"
                "; give --focal-px or --fov"
            )
        inverse = out.predicted_depth[:, None].float() * (w / focal)
        inverse = torch.nn.functional.interpolate(inverse, size=(h, w), mode="bilinear", align_corners=False)
        depth = 1.0 / inverse.clamp(1e-4, 1e4)
        return PriorPrediction(depth[0, 0].cpu().numpy().astype(np.float32), estimated)


class DepthAnythingMetricPrior:
    """Depth Anything V2 metric: metres directly (the checkpoint's ``max_depth`` bounds them)."""

    def __init__(self, source, name, device="cpu", cache_dir=None, local_files_only=False):
        self.model = DepthAnything(
            source,
            name=name,
            device=device,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            hub_id=DEPTH_ANYTHING_V2_METRIC.get(name),
        )
        self.name, self.source = name, str(source)
        kind = getattr(self.model.config, "depth_estimation_type", "relative")
        if kind != "metric":
            raise ValueError(
                f"{source}: a {kind} Depth Anything checkpoint, not a metric one (its config's "
                "depth_estimation_type must be 'metric'); use it with --ensemble instead"
            )

    def predict(self, rgb: np.ndarray, size: tuple[int, int] | None = None, focal_px: float | None = None):
        return PriorPrediction(np.maximum(self.model.predict(rgb, size), 0).astype(np.float32))


class PointsPrior:
    """Sparse metric depths from a file (one image)."""

    def __init__(self, source, name="points", **_):
        self.name, self.source = name, str(source)
        if not Path(source).is_file():
            raise FileNotFoundError(f"{source}: no such metric points file")

    def predict(self, rgb: np.ndarray, size: tuple[int, int] | None = None, focal_px: float | None = None):
        return PriorPrediction(read_sparse_depth(self.source, tuple(size or rgb.shape[:2])), dense=False)


class MiniMetricPriorAdapter:
    """The miniature world's small metric prior (``models.metric_prior``): metres and the focal length."""

    def __init__(self, source, name=MINI_METRIC, device="cpu", **_):
        from ..models.metric_prior import MiniMetricPrior, embedded_metric_prior_dir

        folder = embedded_metric_prior_dir() if source == "embedded" else Path(source)
        if not folder.is_dir():
            raise WeightsNotFoundError(f"{name} weights not found at {folder} (a stripped installation?)")
        self.name, self.source = name, str(folder)
        self.model = MiniMetricPrior.from_pretrained(folder)

    def predict(self, rgb: np.ndarray, size: tuple[int, int] | None = None, focal_px: float | None = None):
        h, w = size or rgb.shape[:2]
        depth, focal = self.model.predict(rgb)
        depth = torch.nn.functional.interpolate(
            torch.from_numpy(depth)[None, None], size=(h, w), mode="bilinear", align_corners=False
        )[0, 0].numpy()
        return PriorPrediction(depth.astype(np.float32), focal * w / rgb.shape[1])


MetricPrior = DepthProPrior | DepthAnythingMetricPrior | PointsPrior | MiniMetricPriorAdapter


def load_prior(spec: str, **kwargs) -> MetricPrior:
    """The prior of a ``--metric`` spec (``device``, ``cache_dir``, ``local_files_only`` for the models)."""
    name, source = parse_prior(spec)
    if name == "points":
        return PointsPrior(source)
    if name in DEPTH_PRO:
        return DepthProPrior(source, name=name, **kwargs)
    if name == MINI_METRIC:
        return MiniMetricPriorAdapter(source, name=name)
    return DepthAnythingMetricPrior(source, name=name, **kwargs)


@dataclass
class MetricResult:
    """Metric depth of one image with its camera: the fusion (depth, residual, confidence), the prior's own map,
    and the intrinsics the point clouds use (with where the focal length came from)."""

    fusion: MetricFusion
    prior_depth: np.ndarray
    intrinsics: Intrinsics
    prior: str  # name
    source: str
    estimated_focal_px: float | None  # the prior's own estimate, also when another focal length was used

    @property
    def depth(self) -> np.ndarray:
        return self.fusion.depth

    @property
    def confidence(self) -> np.ndarray:
        return self.fusion.confidence

    @property
    def residual(self) -> np.ndarray:
        return self.fusion.residual

    def metadata(self) -> dict:
        return {
            "values": "depth along the optical axis in metres",
            "prior": self.prior,
            "prior_source": self.source,
            "fit": self.fusion.metadata(),
            "focal_length_px": self.intrinsics.fx,
            "principal_point_px": [self.intrinsics.cx, self.intrinsics.cy],
            "focal_length_source": self.intrinsics.source,
            "prior_focal_length_px": self.estimated_focal_px,
            "licence": licence_metadata([self.prior])[self.prior],
        }

    def summary(self) -> str:
        return f"{self.prior}: {self.fusion.summary()}; camera fx = fy = {self.intrinsics.fx:.1f} px from " + (
            self.intrinsics.source
        )


def metric_depth(
    inverse_depth: np.ndarray,
    rgb: np.ndarray,
    prior: MetricPrior,
    *,
    focal_px: float | None = None,
    fov_deg: float | None = None,
    image_path: str | Path | None = None,
    low_frequency: bool = False,
) -> MetricResult:
    """Metric depth for ``inverse_depth`` (H x W, PrimeDepth's) of the H' x W' x 3 uint8 image ``rgb``.

    The focal length is, in this order: ``focal_px`` or ``fov_deg`` (the user's), the EXIF focal length of
    ``image_path``, the prior's estimate (Depth Pro's field of view), the default field of view. A known focal
    length (user or EXIF) is also what Depth Pro's metric scale uses. ``low_frequency`` switches the fusion's
    smooth correction on (dense priors only; see docs/metric.md for when it helps)."""
    size = inverse_depth.shape
    known = intrinsics_for(*size, focal_px=focal_px, fov_deg=fov_deg, image_path=image_path)
    given = known.fx if not known.source.startswith("assumed") else None
    prediction = prior.predict(rgb, size, focal_px=given)
    estimate = None
    if prediction.focal_px is not None:
        estimate = (prediction.focal_px, f"{prior.name}'s field-of-view estimate")
    intrinsics = intrinsics_for(*size, focal_px=focal_px, fov_deg=fov_deg, image_path=image_path, estimate=estimate)
    fusion = fuse_with_prior(inverse_depth, prediction.depth, low_frequency=low_frequency and prediction.dense)
    return MetricResult(fusion, prediction.depth, intrinsics, prior.name, prior.source, prediction.focal_px)
