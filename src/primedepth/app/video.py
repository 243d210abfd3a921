"""One clip through ``jobs.video.predict_video`` (the code behind ``primedepth video``), for the app's video tab:
the same decoding, temporal fusion and encoding, written into a fresh folder under the app's temporary folder, with
progress reported per predicted frame and the honest account of what ran."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..jobs.video import predict_video, probe
from .models import ModelRegistry
from .predict import InputRejected
from .results import store_for

TEMPORAL_LABELS = {
    "flow": "flow (stabilised along optical-flow tracks; occlusions keep the current frame)",
    "affine": "affine (stabilised: scale/shift fitted to the previous frames)",
    "off": "off (each frame as predicted, not stabilised)",
}


@dataclass
class VideoTabResult:
    video: Path  # colour depth video (H.264 mp4, near = warm)
    side_by_side: Path | None  # RGB | depth video when asked for
    downloads: list[Path]  # the videos and the float32 stack (npz)
    label: str


def predict_clip(
    registry: ModelRegistry,
    path: str | Path,
    *,
    model: str,
    stride: int = 1,
    max_frames: int = 60,
    temporal: str = "flow",
    side_by_side: bool = True,
    workdir: Path,
    max_pixels: int,
    frame_limit: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> VideoTabResult:
    """Depth video of the clip ``path`` (every ``stride``-th frame, at most ``max_frames``, never more than
    ``frame_limit``); ``on_progress(done, total)`` after each predicted frame. Raises ``InputRejected`` for limits,
    ``VideoReadError`` for a file that is not a readable video, and what the pipeline raises."""
    choice = registry.choice(model)
    if stride < 1 or not 1 <= max_frames <= frame_limit:
        raise InputRejected(f"frame stride must be >= 1 and frames between 1 and {frame_limit} (this app's limit)")
    info = probe(path)
    if info.width * info.height > max_pixels:
        raise InputRejected(
            f"{Path(path).name}: {info.width} x {info.height} frames are over this app's limit of {max_pixels:,} pixels"
        )
    total = min(max_frames, info.frames // stride) if info.frames else max_frames
    store = store_for(workdir)
    out_dir = store.new_folder()
    done = []

    def frame_done(number: int) -> None:
        done.append(number)
        if on_progress is not None:
            on_progress(len(done), total)

    def work(pipe):
        sampling = dict(stride=stride, max_frames=max_frames, temporal=temporal, side_by_side_video=side_by_side)
        result = predict_video(pipe, path, out_dir, model_id=model, progress=False, on_frame=frame_done, **sampling)
        return result, pipe.device

    try:
        result, device = registry.run(model, work)
    finally:
        store.done(out_dir)
    label = (
        f"**{choice.name}** on {device} · {result.frames} frames (frame stride {stride}) "
        f"at {float(result.fps):.3g} fps, {info.width} x {info.height} px, "
        f"processed at long side {choice.default_max_size} px · "
        f"{result.seconds:.1f} s ({result.seconds / max(result.frames, 1):.2f} s per frame) · "
        f"temporal {TEMPORAL_LABELS.get(temporal, temporal)} · "
        "colours span the clip's 1st-99th percentile of inverse depth (near = warm)"
    )
    if choice.caveat:
        label += f"\n\n_{choice.caveat}_"
    outputs = result.outputs
    return VideoTabResult(outputs["video"], outputs.get("side_by_side"), list(outputs.values()), label)
