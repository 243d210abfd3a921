"""Depth for videos and image sequences: decoded and encoded by PyAV (its wheels bundle ffmpeg), resumable,
temporally fused, in memory that does not grow with the video's length.

Every frame is predicted alone with the same noise draw (the pipeline seeds image 0 of a call with ``seed``). The
prediction is affine-invariant per frame and noisy per pixel, so it would flicker; ``outputs.temporal`` fuses the
frames in one streaming pass (optical-flow tracks by default, or only a scale/shift fit). The colour video then uses
one value range for the whole clip.

Input: a video file, or a folder of frames (``jobs.sequence``: PNG / JPEG / TIFF / EXR, natural order).

Resuming: each frame's raw prediction is stored in ``NAME_frames_raw/`` as soon as it is computed (atomically); a
rerun with the same settings loads those instead of recomputing. The fused maps are appended to one file in that
folder as they are made and read back from disk to write the outputs, so only a few frames are ever in memory. The
final files (the frame folder included) are written atomically at the end and the raw folder is removed once they all
exist. Every output and the raw folder are recorded in the output folder's manifest (``outputs.manifest``) before
they are written: a video counts as done only when all its outputs exist and are recorded, and a file or folder of
the user's under one of those names is never replaced or removed.
"""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..outputs.colour import DEFAULT_CMAP, colorize, side_by_side
from ..outputs.formats import FRAME_FORMATS, tiff_bytes, write_exr
from ..outputs.manifest import OutputClashError, OutputManifest
from ..outputs.temporal import TemporalFusion
from ..outputs.writers import _png_bytes
from ..pipelines.image_processor import load_image
from ..utils.atomic import atomic_dir, atomic_path, atomic_save_npy, atomic_write, remove_stale_temps
from .sequence import DEFAULT_FPS, list_frames, read_frame

RANGE_PERCENTILES = (1.0, 99.0)
RANGE_SAMPLES = 250_000  # values drawn (evenly over frames and pixels) for the clip's colour range: 1 MB at most


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
    cache), the output frame rate, and the scale and shift applied to each raw frame (identity when off)."""

    outputs: dict[str, Path]
    frames: int
    predicted: int
    fps: Fraction
    seconds: float
    coefficients: list[tuple[float, float]] = field(default_factory=list)
    skipped: bool = False


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(rgb, k=round(rotation / 90) % 4)) if rotation % 360 else rgb


def _probe_sequence(folder: Path, fps: Fraction) -> VideoInfo:
    files = list_frames(folder)
    if not files:
        raise VideoReadError(f"{folder}: no PNG, JPEG, TIFF or EXR frames in the folder")
    try:
        height, width = read_frame(files[0]).shape[:2]
    except ValueError as err:
        raise VideoReadError(str(err)) from None
    return VideoInfo(fps, width, height, 0, len(files))


def probe(path: str | Path, fps: float | Fraction | None = None) -> VideoInfo:
    """Frame rate, size and rotation of the first video stream of ``path``, or of the image sequence in the
    folder ``path`` (at ``fps``, default 24)."""
    if Path(path).is_dir():
        return _probe_sequence(Path(path), Fraction(fps or DEFAULT_FPS).limit_denominator(1001))
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
    fps: float | Fraction | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(frame number, time in s, uint8 H x W x 3 upright RGB)`` for every ``stride``-th frame in
    ``[start, end)`` seconds, at most ``max_frames``. Frame numbers count decoded frames from the first kept time.
    A folder is read as an image sequence at ``fps`` (default 24)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if Path(path).is_dir():
        yield from _read_sequence(Path(path), stride, start, end, max_frames, fps)
        return
    av = require_av()
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


def _read_sequence(folder, stride, start, end, max_frames, fps) -> Iterator[tuple[int, float, np.ndarray]]:
    rate = float(fps or DEFAULT_FPS)
    kept = number = 0
    shape = None
    for index, file in enumerate(list_frames(folder)):
        t = index / rate
        if start is not None and t < start - 1e-9:
            continue
        if end is not None and t >= end - 1e-9:
            break
        if number % stride == 0:
            try:
                rgb = read_frame(file)
            except ValueError as err:
                raise VideoReadError(str(err)) from None
            if shape is not None and rgb.shape != shape:
                raise VideoReadError(f"{file}: {rgb.shape[1]} x {rgb.shape[0]} differs from the first frame's size")
            shape = rgb.shape
            yield number, t, rgb
            kept += 1
            if max_frames is not None and kept >= max_frames:
                break
        number += 1


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


def png16_in_range(values: np.ndarray, lo: float, hi: float) -> bytes:
    """16-bit PNG of ``values`` mapped from the clip's range [lo, hi] (0 = farthest, 65535 = nearest), so every
    frame of a clip shares one scale."""
    t = (np.clip(values, lo, hi) - np.float32(lo)) / np.float32(hi - lo if hi > lo else 1.0)
    return _png_bytes(Image.fromarray(np.rint(t * 65535).astype(np.uint16)))


class FusedFrames:
    """The fused maps appended to ``path`` (float32, ``count`` x ``shape``), read back one frame at a time."""

    def __init__(self, path: Path, count: int, shape: tuple[int, int]):
        self.path, self.count, self.shape = path, count, shape

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int) -> np.ndarray:
        size = self.shape[0] * self.shape[1]
        return np.fromfile(self.path, np.float32, count=size, offset=4 * size * k).reshape(self.shape)


def write_npz(path: Path, frames: FusedFrames, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez``'s layout (uncompressed zip of .npy members): ``inverse_depth`` streamed frame by frame from
    ``frames``, then the small ``arrays``."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("inverse_depth.npy", "w", force_zip64=True) as member:
            header = {"descr": "<f4", "fortran_order": False, "shape": (len(frames), *frames.shape)}
            np.lib.format.write_array_header_2_0(member, header)
            for k in range(len(frames)):
                member.write(frames[k].astype("<f4").tobytes())
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, value, allow_pickle=False)


def distinct_names(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """The videos whose outputs do not collide, and one report per video whose outputs would be those of an
    earlier one (the same name in another folder)."""
    kept, reports, seen = [], [], {}
    for path in paths:
        first = seen.setdefault(path.stem, path)
        if first == path:
            if path not in kept:
                kept.append(path)
        else:
            reports.append(f"{path}: its outputs would overwrite those of {first} (same name); rename one")
    return kept, reports


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
    temporal: str = "flow",
    window: int = 3,
    memory: int = 4,
    fps: float | None = None,
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
    """Depth video of ``path`` (a video file or a folder of frames) into ``out_dir`` (``NAME_depth.mp4``;
    optionally ``NAME_side.mp4`` RGB | depth, ``NAME_frames/`` 16-bit PNG, EXR or TIFF per frame, and
    ``NAME_depth.npz`` with the float32 stack).

    ``stride`` / ``start`` / ``end`` (seconds) / ``max_frames`` choose frames; the output runs at the input's fps
    (``fps`` for a folder, default 24) divided by ``stride`` so it keeps the input's duration. ``temporal`` is one of
    ``outputs.temporal.TEMPORAL_MODES`` (``window``: frames the affine mode fits to; ``memory``: the longest track
    the flow mode averages). ``caption="auto"`` captions the first frame and conditions every frame on that text.
    ``on_frame`` is called with each newly predicted frame number (progress reporting). ``tiles``: the pipeline's
    tiled high-resolution inference per frame. Raises ``VideoReadError``
    for unreadable input and ``outputs.manifest.OutputClashError`` when an output would replace the input or a file
    we did not write.
    """
    path, out_dir = Path(path), Path(out_dir)
    if frames is not None and frames not in FRAME_FORMATS:
        raise ValueError(f"frame format must be one of {FRAME_FORMATS}, got {frames!r}")
    fusion = TemporalFusion(temporal, window=window, memory=memory, seed=seed)
    name = path.name if path.is_dir() else path.stem
    started = time.perf_counter()
    info = probe(path, fps)
    out_fps = info.fps / stride
    paths = output_paths(out_dir, name, side_by_side_video, frames, npz)
    remove_stale_temps(out_dir)  # temporaries of killed runs
    manifest = OutputManifest(out_dir, inputs=[path])
    if not overwrite and manifest.done(paths.values()):
        return VideoResult(paths, 0, 0, out_fps, time.perf_counter() - started, skipped=True)
    cache = out_dir / f"{name}_frames_raw"
    manifest.claim([*paths.values(), cache])

    source = list_frames(path) if path.is_dir() else [path]
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
        "source_bytes": sum(p.stat().st_size for p in source),
        "source_frames": len(source),
    }
    if tiles != "off":
        settings["tiles"] = tiles
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
    numbers, times, coefficients = [], [], []
    predicted, text, shape = 0, caption, None
    fused_file = cache / "fused.f32"  # the fused maps, appended frame by frame; rewritten by every run
    with open(fused_file, "wb") as fused_out:
        for number, t, rgb in read_frames(path, stride, start, end, max_frames, fps):
            raw_file = cache / f"{number:07d}.npy"
            if raw_file.is_file():
                raw = np.load(raw_file)
            else:
                if text == "auto":
                    text = pipe.captions_for([load_image(rgb)], "auto")[0]
                raw = pipe(
                    rgb, caption=text, seed=seed, noise=noise, max_size=max_size, low_memory=low_memory, tiles=tiles
                ).inverse_depth[0]
                atomic_save_npy(raw_file, raw)
                predicted += 1
                if on_frame is not None:
                    on_frame(number)
            step = fusion.update(rgb, raw)
            shape = step.fused.shape
            fused_out.write(np.ascontiguousarray(step.fused, dtype=np.float32).tobytes())
            numbers.append(number)
            times.append(t)
            coefficients.append((step.scale, step.shift))
            bar.update(1)
    bar.close()
    if not numbers:
        raise VideoReadError(f"{path}: no frames in the chosen range")
    stack = FusedFrames(fused_file, len(numbers), shape)
    pixels = shape[0] * shape[1]
    frame_step, pixel_step = max(1, -(-len(numbers) * pixels // RANGE_SAMPLES)), max(1, pixels // RANGE_SAMPLES)
    sample = np.concatenate([stack[k].reshape(-1)[::pixel_step] for k in range(0, len(numbers), frame_step)])
    lo, hi = (float(v) for v in np.percentile(sample, RANGE_PERCENTILES))
    del sample

    write_video(paths["video"], (colorize(stack[k], cmap, lo, hi) for k in range(len(numbers))), out_fps)
    if side_by_side_video:
        rgb_frames = (rgb for _, _, rgb in read_frames(path, stride, start, end, max_frames, fps))
        write_video(
            paths["side_by_side"],
            (side_by_side(rgb, stack[k], cmap, lo=lo, hi=hi) for k, rgb in zip(range(len(numbers)), rgb_frames)),
            out_fps,
        )
    if frames is not None:
        with atomic_dir(paths["frames"]) as folder:  # the folder appears with every frame, or not at all
            for k, number in enumerate(numbers):
                values = stack[k]
                if frames == "png16":
                    (folder / f"{number:07d}_16bit.png").write_bytes(png16_in_range(values, lo, hi))
                elif frames == "tiff":
                    (folder / f"{number:07d}.tiff").write_bytes(tiff_bytes(values))
                else:
                    write_exr(folder / f"{number:07d}.exr", values)
    if npz:
        small = {
            "frame_numbers": np.array(numbers),
            "times": np.array(times),
            "coefficients": np.array(coefficients),
            "fps": np.array(float(out_fps)),
            "temporal": np.array(temporal),
        }
        with atomic_path(paths["npz"]) as tmp:
            write_npz(tmp, stack, small)
    shutil.rmtree(cache)
    return VideoResult(paths, len(numbers), predicted, out_fps, time.perf_counter() - started, coefficients)


@dataclass
class VideoPlan:
    """The videos to compute (distinct output names), one message per input that cannot be one, and whether any
    video needs the model (False when every output exists and ``overwrite`` is off)."""

    todo: list[Path]
    failures: list[str]
    needed: bool


def plan_videos(
    inputs: list[Path], out_dir: str | Path, *, side_by_side_video: bool, frames: str | None, npz: bool, overwrite: bool
) -> VideoPlan:
    """Check ``inputs`` (video files or frame folders) and see which still need a model run in ``out_dir``."""
    out_dir = Path(out_dir)
    missing = [p for p in inputs if not (p.is_file() or p.is_dir())]
    failures = [f"{p}: {'not a regular file' if p.exists() else 'no such file'}" for p in missing]
    todo, clashes = distinct_names([p for p in inputs if p.is_file() or p.is_dir()])

    def done(path: Path) -> bool:
        name = path.name if path.is_dir() else path.stem
        outputs = output_paths(out_dir, name, side_by_side_video, frames, npz).values()
        return OutputManifest(out_dir, inputs=[path]).done(outputs)

    return VideoPlan(todo, failures + clashes, any(overwrite or not done(p) for p in todo))


@dataclass
class VideosResult:
    """The account of ``predict_videos``: videos written, one message per failed input, and the video that was
    being computed when Ctrl-C stopped the run (its computed frames are kept for the resume)."""

    written: int
    failures: list[str]
    interrupted: Path | None = None

    def summary(self) -> list[str]:
        return [f"done: {self.written} written, {len(self.failures)} failed"] + [
            f"  failed: {failure}" for failure in self.failures
        ]


def predict_videos(
    pipe, plan: VideoPlan, out_dir: str | Path, *, log: Callable[[str], None] = print, **settings
) -> VideosResult:
    """``predict_video`` for each video of ``plan`` (``settings``: its keyword arguments), one line per video to
    ``log``. An unreadable video or an output clash is a failure of that video; an ``OSError`` (a caption model that
    cannot be loaded, a full disk) propagates, as every later video would meet it."""
    result = VideosResult(0, list(plan.failures))
    for path in plan.todo:
        try:
            video = predict_video(pipe, path, out_dir, **settings)
        except VideoReadError as err:
            result.failures.append(str(err))
            continue
        except OutputClashError as err:
            result.failures.append(f"{path}: {err}")
            continue
        except KeyboardInterrupt:
            result.interrupted = path
            break
        if video.skipped:
            log(f"{path}: outputs exist, skipped (--overwrite to redo)")
            continue
        result.written += 1
        log(
            f"{path}: {video.frames} frames at {float(video.fps):.3g} fps ({video.predicted} predicted, "
            f"{video.frames - video.predicted} resumed) -> {video.outputs['video']}"
        )
    return result
