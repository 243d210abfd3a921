"""Video measurement: rendered camera-motion sequences (exact depth and camera poses) through ``predict_video`` with
each temporal mode (off / affine / flow); per-frame δ1 / AbsRel, a temporal error at ground-truth correspondences,
the fusion's cost per frame, and a strip of frames.

    python scripts/video_consistency.py --out docs/video [--sequences 8 --frames 32 --size 64 --seeds 0 1]
    python scripts/video_consistency.py --out docs/video --timing-only --full-size 512 --timing-frames 3

Every frame is predicted once per noise seed (a cache keyed by the frame's pixels) and the three modes fuse the same
raw maps, so the modes differ only by the fusion.

Alignment, two ways. *Per frame*: each frame fitted to its own ground truth (scale and shift in disparity, as the
evaluation does) -- this hides flicker. *Per sequence*: one scale and shift for the whole clip (as a user sees the
video) -- flicker shows up as error.

Temporal error (1/m, lower is better): for consecutive frames k-1, k and every pixel p of frame k whose surface
point is visible in frame k-1 (exact correspondence p' from depth and poses), |Δ predicted - Δ true| with
Δ predicted = a_k(p) - a_{k-1}(p') (sequence-aligned disparity, p' sampled bilinearly) and Δ true = 1/z_k(p) - 1/z'
(the same point's true disparity change); averaged over pixels, then pairs. A perfect prediction scores 0 whatever
the camera does; a flickering one scores its flicker. The same-pixel figure of earlier measurements (Δ at the same
pixel, no correspondences) is reported too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from primedepth.data.scenes import render_trajectory
from primedepth.evaluation.metrics import compute_metrics
from primedepth.evaluation.protocol import score_in_own_range
from primedepth.jobs.video import predict_video, read_frames, write_video
from primedepth.outputs.temporal import TEMPORAL_MODES, TemporalFusion
from primedepth.utils.atomic import atomic_path, atomic_write

SEQUENCE_SEEDS = (404, 505, 606, 707, 808, 909, 1010, 1111, 1212, 1313)  # 101, 202, 303 chose the defaults
STEP = (0.02, 0.0, 0.05)  # metres per frame: a slow walk forward, drifting right
YAW_STEP_DEG = 0.8
VISIBLE = 0.02  # a projected point is visible in the other frame if its depth there agrees within 2 %


class CachedPipe:
    """The pipeline with each (frame, seed) predicted once: the modes share the same raw maps."""

    def __init__(self, pipe):
        self.pipe, self.cache, self.calls = pipe, {}, 0

    def __call__(self, rgb, **kwargs):
        key = (hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest(), kwargs.get("seed"))
        if key not in self.cache:
            self.cache[key] = self.pipe(rgb, **kwargs)
            self.calls += 1
        return self.cache[key]


def correspondences(current, previous) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mask, coords, z_prev)``: pixels of ``current`` whose surface point is visible in ``previous``, where
    they land there (x, y in pixels, float) and the point's depth in ``previous``'s camera."""
    h, w = current.depth.shape
    k = current.intrinsics
    f, cx, cy = k[0, 0], k[0, 2], k[1, 2]
    ii, jj = np.mgrid[0:h, 0:w]
    z = current.depth
    ok = np.isfinite(z) & (z > 0)
    rays = np.stack([(jj + 0.5 - cx) / f, -(ii + 0.5 - cy) / f, np.ones((h, w))], -1)
    world = rays * np.where(ok, z, 1.0)[..., None] @ current.pose[:3, :3].T + current.pose[:3, 3]
    cam = (world - previous.pose[:3, 3]) @ previous.pose[:3, :3]  # R^T (X - o)
    z_prev = cam[..., 2]
    x = f * cam[..., 0] / z_prev + cx - 0.5
    y = cy - f * cam[..., 1] / z_prev - 0.5
    inside = ok & (z_prev > 0) & (x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)
    xi, yi = np.clip(np.rint(x), 0, w - 1).astype(int), np.clip(np.rint(y), 0, h - 1).astype(int)
    seen = previous.depth[yi, xi]
    visible = inside & np.isfinite(seen) & (np.abs(seen - z_prev) <= VISIBLE * z_prev)
    return visible, np.stack([x, y], -1).astype(np.float32), z_prev


def bilinear(values: np.ndarray, coords: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.remap(
        np.ascontiguousarray(values, np.float32),
        coords[..., 0],
        coords[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def sequence_scores(stack: np.ndarray, scenes: list) -> dict:
    depths = [s.depth for s in scenes]
    per_frame = [score_in_own_range(pred, gt)[0] for pred, gt in zip(stack, depths)]
    _, aligned = score_in_own_range(np.concatenate(list(stack), axis=1), np.concatenate(depths, axis=1))
    aligned = np.split(aligned, len(depths), axis=1)
    per_sequence, temporal, same_pixel, gt_motion = [], [], [], []
    for k, (pred, gt) in enumerate(zip(aligned, depths)):
        valid = np.isfinite(gt) & (gt > 0)
        per_sequence.append(compute_metrics(pred, np.where(valid, gt, 1.0), valid))
        if not k:
            continue
        mask, coords, z_prev = correspondences(scenes[k], scenes[k - 1])
        disparity_prev = bilinear(1.0 / aligned[k - 1], coords)
        d_pred = 1.0 / pred[mask] - disparity_prev[mask]
        d_true = 1.0 / gt[mask] - 1.0 / z_prev[mask]
        temporal.append(float(np.mean(np.abs(d_pred - d_true))))
        gt_motion.append(float(np.mean(np.abs(d_true))))
        prev_gt = depths[k - 1]
        both = valid & np.isfinite(prev_gt) & (prev_gt > 0)
        d_pred = 1.0 / pred[both] - 1.0 / aligned[k - 1][both]
        d_gt = 1.0 / gt[both] - 1.0 / prev_gt[both]
        same_pixel.append(float(np.mean(np.abs(d_pred - d_gt))))
    return {
        "per_frame_delta1": [m["delta1"] for m in per_frame],
        "per_frame_abs_rel": [m["abs_rel"] for m in per_frame],
        "seq_delta1": [m["delta1"] for m in per_sequence],
        "seq_abs_rel": [m["abs_rel"] for m in per_sequence],
        "temporal_error": temporal,
        "same_pixel": same_pixel,
        "gt_motion": gt_motion,
    }


KEYS = ("per_frame_delta1", "per_frame_abs_rel", "seq_delta1", "seq_abs_rel", "temporal_error", "same_pixel")


def measure(pipe, out: Path, sequences: int, frames: int, size: int, seeds: list[int]) -> tuple[dict, dict]:
    """Scores per mode, noise seed and sequence; and the stacks of the first sequence (seed ``seeds[0]``)."""
    cached = CachedPipe(pipe)
    results = {mode: {str(seed): [] for seed in seeds} for mode in TEMPORAL_MODES}
    example = {}
    for index, scene_seed in enumerate(SEQUENCE_SEEDS[:sequences]):
        scenes = render_trajectory(scene_seed, frames, size, size, step=STEP, yaw_step_deg=YAW_STEP_DEG, indoor=True)
        clip = out / "clips" / f"seq{scene_seed}.mp4"
        write_video(clip, (s.image for s in scenes), Fraction(10), crf=0)
        for seed in seeds:
            for mode in TEMPORAL_MODES:
                result = predict_video(
                    cached, clip, out / mode, temporal=mode, seed=seed, overwrite=True, progress=False
                )
                stack = np.load(result.outputs["npz"])["inverse_depth"]
                results[mode][str(seed)].append(sequence_scores(stack, scenes))
                if index == 0 and seed == seeds[0]:
                    example[mode] = stack
        example["scenes"] = example.get("scenes", scenes)
        print(f"sequence {scene_seed}: {cached.calls} frames predicted so far", flush=True)
    return results, example


def summary(results: dict) -> dict:
    """Mean over sequences (and frames) per mode, with the spread over noise seeds (max - min of the seed means)."""
    table = {}
    for mode, by_seed in results.items():
        row = {}
        for key in KEYS:
            per_seed = [float(np.mean([np.mean(r[key]) for r in runs])) for runs in by_seed.values()]
            row[key] = float(np.mean(per_seed))
            row[f"{key}_seed_spread"] = float(max(per_seed) - min(per_seed))
        row["gt_motion"] = float(np.mean([np.mean(r["gt_motion"]) for runs in by_seed.values() for r in runs]))
        table[mode] = row
    return table


def fusion_cost(clip: Path, raws: list[np.ndarray], size: int, repeats: int = 3) -> dict:
    """Milliseconds per frame of ``TemporalFusion.update`` per mode on the frames of ``clip`` (resized to
    ``size``), best of ``repeats`` passes; the model is not included."""
    import cv2

    frames = [cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC) for _, _, rgb in read_frames(clip)]
    raws = [cv2.resize(r, (size, size), interpolation=cv2.INTER_CUBIC) for r in raws]
    cost = {}
    for mode in TEMPORAL_MODES:
        best = np.inf
        for _ in range(repeats):
            fusion = TemporalFusion(mode)
            start = time.perf_counter()
            for rgb, raw in zip(frames, raws):
                fusion.update(rgb, raw)
            best = min(best, (time.perf_counter() - start) / len(frames))
        cost[mode] = 1000 * best
    return cost


def strip(example: dict, path: Path, first: int, count: int) -> None:
    """RGB, ground truth, off and flow for ``count`` consecutive frames (one colour range per row), and the
    frame-to-frame change of off and flow next to the true change (same pixel, disparity)."""
    from matplotlib.figure import Figure

    from primedepth.outputs.colour import colorize

    scenes = example["scenes"][first : first + count + 1]
    gt = np.stack([1.0 / s.depth for s in scenes])
    rows = [("RGB", [s.image for s in scenes[1:]])]
    rows.append(("ground truth", [colorize(g, lo=gt.min(), hi=gt.max()) for g in gt[1:]]))
    changes = [("true change", np.diff(gt, axis=0))]
    for mode in ("off", "flow"):
        stack = example[mode][first : first + count + 1]
        # the stack in the ground truth's disparity units (one scale and shift for the strip) to compare changes
        a, b = np.polyfit(stack.ravel(), gt.ravel(), 1)
        aligned = a * stack + b
        lo, hi = np.percentile(aligned, (1, 99))
        rows.append((f"--temporal {mode}", [colorize(m, lo=lo, hi=hi) for m in aligned[1:]]))
        changes.append((f"change, {mode}", np.diff(aligned, axis=0)))
    limit = float(np.percentile(np.abs(changes[0][1]), 99)) * 2
    fig = Figure(figsize=(1.25 * count + 1.2, 1.3 * (len(rows) + len(changes))), layout="constrained")
    axes = fig.subplots(len(rows) + len(changes), count)
    for r, (_, images) in enumerate(rows):
        for c, image in enumerate(images):
            axes[r, c].imshow(image)
    for r, (_, diff) in enumerate(changes, start=len(rows)):
        for c in range(count):
            axes[r, c].imshow(diff[c], cmap="RdBu_r", vmin=-limit, vmax=limit)
    for r, (label, _) in enumerate(rows + changes):
        axes[r, 0].set_ylabel(label, fontsize=8)
    for c in range(count):
        axes[0, c].set_title(f"frame {first + c + 1}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def curves(results: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for mode, colour in zip(TEMPORAL_MODES, ("C0", "C1", "C3")):
        runs = next(iter(results[mode].values()))
        for i, run in enumerate(runs):
            label = mode if i == 0 else None
            axes[0].plot(run["seq_abs_rel"], color=colour, alpha=0.6, label=label)
            axes[1].plot(range(1, len(run["temporal_error"]) + 1), run["temporal_error"], color=colour, alpha=0.6)
    axes[0].set_title("AbsRel, one alignment per sequence", fontsize=9)
    axes[1].set_title("temporal error at true correspondences (1/m)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("frame")
    axes[0].legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def time_per_frame(pipe, size: int, frames: int, out: Path) -> float:
    """Seconds per frame of ``predict_video`` at ``size`` x ``size`` (after one warm-up frame, not counted)."""
    scenes = render_trajectory(SEQUENCE_SEEDS[0], frames + 1, size, size, step=STEP, yaw_step_deg=YAW_STEP_DEG)
    clip = out / "clips" / f"timing{size}.mp4"
    write_video(clip, (s.image for s in scenes), Fraction(10))
    pipe(scenes[0].image, max_size=size)  # warm-up
    start = time.perf_counter()
    predict_video(
        pipe, clip, out / f"timing{size}", max_frames=frames + 1, max_size=size, overwrite=True, progress=False
    )
    return (time.perf_counter() - start) / (frames + 1)


def timing(mini, args) -> None:
    from primedepth import PrimeDepthPipeline
    from primedepth.conversion.official_config import FULL_OFFICIAL_CONFIG

    record = {"threads": 1, "device": args.device}
    record["seconds_per_frame_mini_64"] = time_per_frame(mini, 64, args.timing_frames, args.out)
    if args.full_size:
        import torch

        with torch.random.fork_rng(devices=[]):
            full = PrimeDepthPipeline.tiny_random(config=FULL_OFFICIAL_CONFIG).to(args.device)
        full.optimize(channels_last=True, drop_vae_decoder=True)
        record[f"seconds_per_frame_full_random_{args.full_size}"] = time_per_frame(
            full, args.full_size, args.timing_frames, args.out
        )
    print(record)
    atomic_write(args.out / "timing.json", json.dumps(record, indent=1).encode())


def main():
    import torch

    from primedepth import PrimeDepthPipeline

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="noise seeds of the prediction")
    parser.add_argument("--cost-size", type=int, default=256, help="also time the fusion at this size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timing-only", action="store_true", help="only the wall time per frame of predict_video")
    parser.add_argument("--full-size", type=int, default=0, help="also time full-size random weights at this size")
    parser.add_argument("--timing-frames", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    mini = PrimeDepthPipeline.from_pretrained("primedepth-mini", device=args.device)
    if args.timing_only:
        timing(mini, args)
        return
    results, example = measure(mini, args.out, args.sequences, args.frames, args.size, args.seeds)
    table = summary(results)
    first_clip = args.out / "clips" / f"seq{SEQUENCE_SEEDS[0]}.mp4"
    raws = list(example["off"])
    cost = {f"{args.size}": fusion_cost(first_clip, raws, args.size)}
    if args.cost_size:
        cost[f"{args.cost_size}"] = fusion_cost(first_clip, raws, args.cost_size)
    start = time.perf_counter()
    for rgb in example["scenes"][:3]:
        mini(rgb.image, max_size=args.size, seed=args.seeds[0])
    model_ms = 1000 * (time.perf_counter() - start) / 3
    record = {
        "threads": 1,
        "device": args.device,
        "sequences": args.sequences,
        "frames": args.frames,
        "size": args.size,
        "seeds": args.seeds,
        "summary": table,
        "fusion_ms_per_frame": cost,
        "model_ms_per_frame": model_ms,
        "results": results,
    }
    print(json.dumps({"summary": table, "fusion_ms_per_frame": cost, "model_ms_per_frame": model_ms}, indent=1))
    atomic_write(args.out / "video-consistency.json", json.dumps(record, indent=1).encode())
    curves(results, args.out.parent / "video-consistency.png")
    count = min(6, args.frames - 1)
    strip(example, args.out.parent / "video-strip.png", first=min(8, args.frames - 1 - count), count=count)


if __name__ == "__main__":
    main()
