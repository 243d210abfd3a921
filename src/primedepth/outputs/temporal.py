"""Temporal fusion of per-frame depth maps: one streaming, causal pass over a video.

A single-image model predicts every frame alone, so its maps flicker: each has its own scale and shift
(affine-invariant output) and its own per-pixel noise. Three modes:

* ``off`` -- each frame as predicted.
* ``affine`` -- each frame's scale and shift fitted (robust least squares) to the previous ``window`` fused maps on
  fixed pixels. Removes the affine drift, not the per-pixel noise.
* ``flow`` -- the previous result follows the scene: dense optical flow (OpenCV's DIS, a classical method without
  learned weights) from the current frame to the previous one warps the previous result onto the current frame.
  The current frame's scale and shift are fitted to the warped map over the pixels whose forward and backward flows
  agree (robust fit, then a symmetric one); through that fit the warped map is expressed in the current frame's
  units and averaged with it where they agree (a running mean along each pixel's track, at most ``memory`` frames
  long). Occluded and newly visible pixels, where the flows disagree or the warped value is far off the fit, keep
  the current frame's value and start a new track. The average is then put into the previous result's units, but
  only ``FOLLOW`` of the way: fits chained from frame to frame drift (a camera moving forward makes every tracked
  point nearer, which each fit partly mistakes for a change of scale), so the remainder decays to the frame's own
  scale and shift.

The state is one frame (grey image, fused map, track lengths), so memory does not grow with the video's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..alignment import robust_fit_scale_shift

TEMPORAL_MODES = ("flow", "affine", "off")
FIT_PIXELS = 4096  # pixels per reference frame used by the scale/shift fits
MIN_TRACKED = 0.05  # below this fraction of pixels with agreeing flow, the flow fit falls back to the affine one
AGREEMENT_SIGMAS = 12.0  # |current - carried| beyond this many robust sigmas of the fit: not the same surface
AGREEMENT_FLOOR = 0.02  # ... and never stricter than this fraction of the map's range (a near-perfect fit's sigma)
FOLLOW = 0.7  # share of the frame-to-frame scale/shift the flow mode applies; the rest decays to the frame's own
FIT_TRIALS = 64  # two-point trials of the robust fit: consecutive frames agree on most pixels, so few are needed


def require_cv2():
    try:
        import cv2
    except ImportError:
        raise ImportError("--temporal flow needs OpenCV: pip install 'primedepth[outputs]'") from None
    return cv2


def stabilising_fit(raw: np.ndarray, references: list[np.ndarray], seed: int = 0) -> tuple[float, float]:
    """``(scale, shift)`` with ``scale * raw + shift`` closest (robustly) to each of the previous stabilised maps,
    on a fixed pixel subsample; moving objects and newly visible surfaces are rejected as outliers."""
    flat = raw.reshape(-1)
    pick = np.random.default_rng(seed).choice(flat.size, size=min(flat.size, FIT_PIXELS), replace=False)
    pred = np.concatenate([flat[pick]] * len(references))
    target = np.concatenate([ref.reshape(-1)[pick] for ref in references])
    fit = robust_fit_scale_shift(pred, target, iterations=FIT_TRIALS, seed=seed)
    return fit.scale, fit.shift


def symmetric_scale_shift(pred: np.ndarray, target: np.ndarray, scale: float, shift: float) -> tuple[float, float]:
    """Scale and shift matching the spread and mean of ``pred`` to those of ``target`` (reduced major axis), with
    the sign of the least-squares ``scale``. Least squares of a noisy ``target`` on a noisy ``pred`` shrinks the
    scale by the share of noise in ``pred``; chained from frame to frame that shrinkage compounds and the maps
    collapse towards their mean. The symmetric fit has no such bias when both carry noise of similar size."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    spread = pred.std()
    if pred.size < 2 or spread <= 0 or target.std() <= 0:
        return scale, shift
    scale = float(np.copysign(target.std() / spread, scale))
    return scale, float(target.mean() - scale * pred.mean())


def grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 luma of an RGB frame (what the flow is computed on)."""
    cv2 = require_cv2()
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


class FlowWarp:
    """Dense flow between two grey frames and the warp it implies, with a forward-backward consistency mask."""

    def __init__(self):
        cv2 = require_cv2()
        self.cv2 = cv2
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.dis.setFinestScale(0)  # full resolution: frames are often small (depth at the model's size)

    def flow(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """H x W x 2 (dx, dy) with ``source(p) ~ target(p + flow(p))``."""
        return self.dis.calc(source, target, None)

    def _sample(self, values: np.ndarray, coords: np.ndarray, nearest: bool = False) -> np.ndarray:
        interpolation = self.cv2.INTER_NEAREST if nearest else self.cv2.INTER_LINEAR
        return self.cv2.remap(
            values, coords[..., 0], coords[..., 1], interpolation, borderMode=self.cv2.BORDER_REPLICATE
        )

    def backward(self, previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(coords, agree)``: where each pixel of ``current`` lies in ``previous`` (H x W x 2 float32, x then y)
        and whether the forward and backward flows agree there and it lies inside ``previous``."""
        back = self.flow(current, previous)
        forward = self.flow(previous, current)
        h, w = current.shape
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        coords = np.stack([x + back[..., 0], y + back[..., 1]], axis=-1)
        returned = self._sample(forward, coords)
        # Sundaram et al.'s test: the round trip p -> p + b -> p + b + f(p + b) ends near p
        loop = np.sum((back + returned) ** 2, axis=-1)
        agree = loop <= 0.01 * (np.sum(back**2, axis=-1) + np.sum(returned**2, axis=-1)) + 0.5
        inside = (coords[..., 0] >= 0) & (coords[..., 0] <= w - 1) & (coords[..., 1] >= 0) & (coords[..., 1] <= h - 1)
        return coords, agree & inside

    def warp(self, values: np.ndarray, coords: np.ndarray, nearest: bool = False) -> np.ndarray:
        """``values`` of the previous frame seen at ``coords`` (bilinear, or nearest for labels and counts)."""
        return self._sample(np.ascontiguousarray(values, dtype=np.float32), coords, nearest)


@dataclass
class FusionStep:
    """One frame's result: the fused map, the scale and shift applied (affine: to the raw prediction; flow: to the
    track average, in the raw prediction's units), and (flow mode) the pixels that continued a track."""

    fused: np.ndarray
    scale: float
    shift: float
    tracked: np.ndarray | None = None


class TemporalFusion:
    """Streaming fusion of raw per-frame maps in one of ``TEMPORAL_MODES``; call ``update`` frame by frame.

    ``window``: previous fused maps the affine mode fits to. ``memory``: the longest track the flow mode averages
    over (the weight of the current frame never drops below ``1 / memory``). ``seed``: the fits' pixel draws.
    """

    def __init__(self, mode: str = "flow", *, window: int = 3, memory: int = 4, seed: int = 0):
        if mode not in TEMPORAL_MODES:
            raise ValueError(f"temporal mode must be one of {TEMPORAL_MODES}, got {mode!r}")
        if memory < 1 or window < 1:
            raise ValueError(f"memory and window must be >= 1, got {memory} and {window}")
        self.mode, self.window, self.memory, self.seed = mode, window, memory, seed
        self.flow = FlowWarp() if mode == "flow" else None
        self.recent: list[np.ndarray] = []
        self.previous_grey: np.ndarray | None = None
        self.track: np.ndarray | None = None

    def update(self, rgb: np.ndarray, raw: np.ndarray) -> FusionStep:
        """Fuse the raw map ``raw`` (H x W) of the frame ``rgb`` (H x W x 3 uint8, same size) with the past."""
        raw = np.asarray(raw, np.float32)
        if self.mode == "off":
            return FusionStep(raw, 1.0, 0.0)
        if self.mode == "affine":
            return self._stabilised(raw)
        current = grey(rgb)
        if current.shape != raw.shape:
            current = self.flow.cv2.resize(current, raw.shape[::-1], interpolation=self.flow.cv2.INTER_AREA)
        step = self._flow_step(current, raw)
        self.previous_grey = current
        return step

    def _flow_step(self, current: np.ndarray, raw: np.ndarray) -> FusionStep:
        untracked = np.zeros(raw.shape, bool)
        if self.previous_grey is None:
            self.track = np.ones(raw.shape, np.float32)
            return self._stabilised(raw, untracked)
        previous = self.recent[-1]
        coords, agree = self.flow.backward(self.previous_grey, current)
        if agree.mean() < MIN_TRACKED:  # a cut or a blur: nothing to follow, keep only the affine continuity
            self.track = np.ones(raw.shape, np.float32)
            return self._stabilised(raw, untracked)
        warped = self.flow.warp(previous, coords)
        track = self.flow.warp(self.track, coords, nearest=True)
        ys, xs = np.nonzero(agree)
        pick = np.random.default_rng(self.seed).choice(ys.size, size=min(ys.size, FIT_PIXELS), replace=False)
        pred, target = raw[ys[pick], xs[pick]], warped[ys[pick], xs[pick]]
        fit = robust_fit_scale_shift(pred, target, iterations=FIT_TRIALS, seed=self.seed)
        scale, shift = symmetric_scale_shift(pred[fit.inliers], target[fit.inliers], fit.scale, fit.shift)
        if abs(scale) < 1e-12:
            self.track = np.ones(raw.shape, np.float32)
            return self._stabilised(raw, untracked)
        # the previous result in this frame's units: the fit only matches the two, it is not chained
        carried = (warped - np.float32(shift)) / np.float32(scale)
        sigma = 1.4826 * fit.residual_median
        low, high = np.percentile(warped[agree], (2, 98))
        tolerance = max(AGREEMENT_SIGMAS * sigma, AGREEMENT_FLOOR * float(high - low)) / abs(scale)
        tracked = agree & (np.abs(raw - carried) <= tolerance)
        history = np.where(tracked, np.minimum(track, self.memory - 1), 0.0).astype(np.float32)
        smoothed = np.where(tracked, (history * carried + raw) / (history + 1), raw).astype(np.float32)
        self.track = history + 1
        # back to the previous result's units, leaking towards the frame's own (chained fits would drift)
        scale, shift = 1.0 + FOLLOW * (scale - 1.0), FOLLOW * shift
        fused = np.float32(scale) * smoothed + np.float32(shift)
        self.recent = [fused]
        return FusionStep(fused, scale, shift, tracked)

    def _stabilised(self, values: np.ndarray, tracked: np.ndarray | None = None) -> FusionStep:
        """``values`` with the scale and shift that match them to the previous ``window`` results (identity for
        the first frame)."""
        scale, shift = stabilising_fit(values, self.recent, self.seed) if self.recent else (1.0, 0.0)
        fused = np.float32(scale) * values + np.float32(shift)
        self.recent = (self.recent + [fused])[-self.window :]
        return FusionStep(fused, scale, shift, tracked)
