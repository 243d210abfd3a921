"""Depth for videos: decoded and encoded by PyAV (its wheels bundle ffmpeg), resumable, temporally stabilised.

Every frame is predicted alone with the same noise draw (the pipeline seeds image 0 of a call with ``seed``). The
prediction is affine-invariant per frame, so each frame's scale and shift would wander; stabilisation fits them
(robust least squares, ``outputs.alignment``) to the running result over the previous ``window`` frames. The colour
video then uses one value range for the whole clip.

Resuming: each frame's raw prediction is stored in ``NAME_frames_raw/`` as soon as it is computed (atomically); a
rerun with the same settings loads those instead of recomputing. The final files are written atomically at the end
and the raw folder is removed once they all exist.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..pipelines.export import _png_bytes
from ..pipelines.image_processor import load_image
from ..utils.atomic import atomic_path, atomic_write
from .alignment import robust_fit_scale_shift
from .colour import DEFAULT_CMAP, colorize, side_by_side
from .formats import write_exr

FRAME_FORMATS = ("png16", "exr")
FIT_PIXELS = 4096  # pixels per reference frame used by the stabilising fit
RANGE_PERCENTILES = (1.0, 99.0)


class VideoReadError(ValueError):
    """A video that cannot be read; the message names the file and the problem."""


def require_av():
    try:
        import av
    except ImportError:
        raise ImportError("video needs PyAV: pip install 'primedepth[outputs]'") from None
    return av


@dataclass
class VideoInfo:
    """What the decoder reports: frame rate, upright size (rotation applied), rotation, frame count if known."""

    fps: Fraction
    width: int
    height: int
    rotation: int  # degrees counter-clockwise applied to the decoded frames to show them upright
    frames: int | None


@dataclass
class VideoResult:
    """Paths written, frames in the output, how many were predicted in this run (the rest came from the resume
    cache), the output frame rate, and the stabilising fit per frame (scale, shift; identity when off)."""

    outputs: dict[str, Path]
    frames: int
    predicted: int
    fps: Fraction
    seconds: float
    coefficients: list[tuple[float, float]] = field(default_factory=list)
    skipped: bool = False


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(rgb, k=round(rotation / 90) % 4)) if rotation % 360 else rgb


def probe(path: str | Path) -> VideoInfo:
    """Frame rate, size and rotation of the first video stream of ``path``."""
    av = require_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            fps = Fraction(stream.average_rate or stream.guessed_rate or 25)
            rotation = 0
            for frame in container.decode(stream):
                rotation = int(frame.rotation or 0)
                width, height = frame.width, frame.height
                break
            else:
                raise VideoReadError(f"{path}: the video holds no frames")
    except av.FFmpegError as err:
        raise VideoReadError(f"{path}: not a video ffmpeg can read ({err})") from None
    if round(rotation / 90) % 2:
        width, height = height, width
    return VideoInfo(fps, width, height, rotation, stream.frames or None)


def read_frames(
    path: str | Path,
    stride: int = 1,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(frame number, time in s, uint8 H x W x 3 upright RGB)`` for every ``stride``-th frame in
    ``[start, end)`` seconds, at most ``max_frames``. Frame numbers count decoded frames from the first kept time."""
    av = require_av()
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    kept = number = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else number / float(stream.average_rate or 25)
                if start is not None and t < start - 1e-9:
                    continue
                if end is not None and t >= end - 1e-9:
                    break
                if number % stride == 0:
                    yield number, t, _upright(frame.to_ndarray(format="rgb24"), int(frame.rotation or 0))
                    kept += 1
                    if max_frames is not None and kept >= max_frames:
                        break
                number += 1
    except av.FFmpegError as err:
        raise VideoReadError(f"{path}: decoding failed ({err})") from None


def write_video(path: str | Path, frames: Iterator[np.ndarray], fps: Fraction, crf: int = 18) -> int:
    """Encode uint8 RGB frames as H.264 (yuv420p, odd sizes padded by one edge pixel) into ``path``, atomically;
    returns the number of frames written."""
    av = require_av()
    count = 0
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = None
        for rgb in frames:
            h, w = rgb.shape[:2]
            if h % 2 or w % 2:
                rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf)}
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return count


def stabilising_fit(raw: np.ndarray, references: list[np.ndarray], seed: int = 0) -> tuple[float, float]:
    """``(scale, shift)`` with ``scale * raw + shift`` closest (robustly) to each of the previous stabilised maps,
    on a fixed pixel subsample; moving objects and newly visible surfaces are rejected as outliers."""
    flat = raw.reshape(-1)
    pick = np.random.default_rng(seed).choice(flat.size, size=min(flat.size, FIT_PIXELS), replace=False)
    pred = np.concatenate([flat[pick]] * len(references))
    target = np.concatenate([ref.reshape(-1)[pick] for ref in references])
    fit = robust_fit_scale_shift(pred, target, seed=seed)
    return fit.scale, fit.shift


def png16_in_range(values: np.ndarray, lo: float, hi: float) -> bytes:
    """16-bit PNG of ``values`` mapped from the clip's range [lo, hi] (0 = farthest, 65535 = nearest), so every
    frame of a clip shares one scale."""
    t = (np.clip(values, lo, hi) - np.float32(lo)) / np.float32(hi - lo if hi > lo else 1.0)
    return _png_bytes(Image.fromarray(np.rint(t * 65535).astype(np.uint16)))


def output_paths(out_dir: Path, name: str, side_by_side_video: bool, frames: str | None, npz: bool) -> dict:
    paths = {"video": out_dir / f"{name}_depth.mp4"}
    if side_by_side_video:
        paths["side_by_side"] = out_dir / f"{name}_side.mp4"
    if npz:
        paths["npz"] = out_dir / f"{name}_depth.npz"
    if frames is not None:
        paths["frames"] = out_dir / f"{name}_frames"
    return paths


def predict_video(
    pipe,
    path: str | Path,
    out_dir: str | Path,
    *,
    stride: int = 1,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    stabilise: bool = True,
    window: int = 3,
    side_by_side_video: bool = False,
    frames: str | None = None,
    npz: bool = True,
    cmap: str = DEFAULT_CMAP,
    seed: int = 0,
    noise: str = "sampled",
    caption: str | None = None,
    max_size: int | str | None = "auto",
    low_memory: bool = False,
    tiles: str | int = "off",
    overwrite: bool = False,
    model_id: str | None = None,
    progress: bool = True,
    on_frame: Callable[[int], None] | None = None,
) -> VideoResult:
    """Depth video of ``path`` into ``out_dir`` (``NAME_depth.mp4``; optionally ``NAME_side.mp4`` RGB | depth,
    ``NAME_frames/`` 16-bit PNG or EXR per frame, and ``NAME_depth.npz`` with the float32 stack).

    ``stride`` / ``start`` / ``end`` (seconds) / ``max_frames`` choose frames; the output runs at the input's fps
    divided by ``stride`` so it keeps the input's duration. ``stabilise=False`` keeps each frame's own affine map.
    ``caption="auto"`` captions the first frame and conditions every frame on that text. ``on_frame`` is called
    with each newly predicted frame number (progress reporting). ``tiles``: the pipeline's tiled high-resolution
    inference per frame. Raises ``VideoReadError`` for unreadable input.
    """
    path, out_dir = Path(path), Path(out_dir)
    if frames is not None and frames not in FRAME_FORMATS:
        raise ValueError(f"frame format must be one of {FRAME_FORMATS}, got {frames!r}")
    name = path.stem
    started = time.perf_counter()
    info = probe(path)
    fps = info.fps / stride
    paths = output_paths(out_dir, name, side_by_side_video, frames, npz)
    if not overwrite and all(p.exists() for p in paths.values()):
        return VideoResult(paths, 0, 0, fps, time.perf_counter() - started, skipped=True)

    settings = {
        "stride": stride,
        "start": start,
        "end": end,
        "max_frames": max_frames,
        "seed": seed,
        "noise": noise,
        "caption": caption,
        "max_size": max_size,
        "model": model_id,
        "source_bytes": path.stat().st_size,
    }
    if tiles != "off":
        settings["tiles"] = tiles
    cache = out_dir / f"{name}_frames_raw"
    settings_file = cache / "settings.json"
    if cache.exists() and (
        overwrite or not settings_file.is_file() or json.loads(settings_file.read_text()) != settings
    ):
        shutil.rmtree(cache)  # made with other settings: its frames are not this run's
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write(settings_file, json.dumps(settings).encode())

    expected = info.frames // stride if info.frames else None
    if max_frames is not None:
        expected = max_frames if expected is None else min(expected, max_frames)
    bar = tqdm(total=expected, desc=name, unit="frame", disable=not progress)
    numbers, times, coefficients, recent = [], [], [], []
    predicted, text = 0, caption
    for number, t, rgb in read_frames(path, stride, start, end, max_frames):
        raw_file = cache / f"{number:07d}.npy"
        if raw_file.is_file():
            raw = np.load(raw_file)
        else:
            if text == "auto":
                text = pipe.captions_for([load_image(rgb)], "auto")[0]
            raw = pipe(
                rgb, caption=text, seed=seed, noise=noise, max_size=max_size, low_memory=low_memory, tiles=tiles
            ).inverse_depth[0]
            with atomic_path(raw_file) as tmp:
                np.save(tmp, raw)
            predicted += 1
            if on_frame is not None:
                on_frame(number)
        scale, shift = stabilising_fit(raw, recent, seed) if stabilise and recent else (1.0, 0.0)
        recent = (recent + [np.float32(scale) * raw + np.float32(shift)])[-window:]
        numbers.append(number)
        times.append(t)
        coefficients.append((scale, shift))
        bar.update(1)
    bar.close()
    if not numbers:
        raise VideoReadError(f"{path}: no frames in the chosen range")

    def stabilised(k: int) -> np.ndarray:
        scale, shift = coefficients[k]
        return np.float32(scale) * np.load(cache / f"{numbers[k]:07d}.npy") + np.float32(shift)

    step = max(1, recent[-1].size // 20000)
    sample = np.concatenate([stabilised(k).reshape(-1)[::step] for k in range(len(numbers))])
    lo, hi = (float(v) for v in np.percentile(sample, RANGE_PERCENTILES))

    write_video(paths["video"], (colorize(stabilised(k), cmap, lo, hi) for k in range(len(numbers))), fps)
    if side_by_side_video:
        rgb_frames = (rgb for _, _, rgb in read_frames(path, stride, start, end, max_frames))
        write_video(
            paths["side_by_side"],
            (side_by_side(rgb, stabilised(k), cmap, lo=lo, hi=hi) for k, rgb in zip(range(len(numbers)), rgb_frames)),
            fps,
        )
    if frames is not None:
        folder = paths["frames"]
        folder.mkdir(parents=True, exist_ok=True)
        for k, number in enumerate(numbers):
            values = stabilised(k)
            if frames == "png16":
                atomic_write(folder / f"{number:07d}_16bit.png", png16_in_range(values, lo, hi))
            else:
                write_exr(folder / f"{number:07d}.exr", values)
    if npz:
        stack = np.lib.format.open_memmap(
            cache / "stack.npy",
            mode="w+",
            dtype=np.float32,
            shape=(len(numbers), *np.load(cache / f"{numbers[0]:07d}.npy").shape),
        )
        for k in range(len(numbers)):
            stack[k] = stabilised(k)
        stack.flush()
        with atomic_path(paths["npz"]) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                inverse_depth=stack,
                frame_numbers=np.array(numbers),
                times=np.array(times),
                coefficients=np.array(coefficients),
                fps=np.array(float(fps)),
                stabilised=np.array(stabilise),
            )
        del stack
    shutil.rmtree(cache)
    return VideoResult(paths, len(numbers), predicted, fps, time.perf_counter() - started, coefficients)
