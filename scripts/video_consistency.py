"""Video measurement: rendered camera-motion sequences (ground truth known) through ``predict_video`` with and
without stabilisation; per-frame δ1 / AbsRel and a temporal-consistency figure; wall time per frame.

    python scripts/video_consistency.py --out docs/video [--sequences 4 --frames 16 --size 64]
    python scripts/video_consistency.py --out docs/video --timing-only --full-size 512 --timing-frames 3

Alignment, two ways. *Per frame*: each frame fitted to its own ground truth (scale and shift in disparity, as the
evaluation does) -- this hides flicker. *Per sequence*: one scale and shift for the whole clip (as a user sees the
video) -- flicker shows up as error. Temporal consistency: mean over consecutive frame pairs of
mean |Δ aligned disparity - Δ ground-truth disparity| over pixels valid in both frames (1/m; lower is better), with
the sequence alignment; the ground truth's own mean |Δ disparity| is printed for scale.
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from primedepth.evaluation.metrics import compute_metrics
from primedepth.evaluation.protocol import score_in_own_range
from primedepth.miniature.scene import render_trajectory
from primedepth.outputs.video import predict_video, write_video
from primedepth.utils.atomic import atomic_path, atomic_write

SEQUENCE_SEEDS = (101, 202, 303, 404, 505, 606)
STEP = (0.02, 0.0, 0.05)  # metres per frame: a slow walk forward, drifting right
YAW_STEP_DEG = 0.8


def sequence_scores(stack: np.ndarray, depths: list[np.ndarray]) -> dict:
    per_frame = [score_in_own_range(pred, gt)[0] for pred, gt in zip(stack, depths)]
    _, aligned = score_in_own_range(np.concatenate(list(stack), axis=1), np.concatenate(depths, axis=1))
    aligned = np.split(aligned, len(depths), axis=1)
    per_sequence, consistency, gt_motion = [], [], []
    for k, (pred, gt) in enumerate(zip(aligned, depths)):
        valid = np.isfinite(gt) & (gt > 0)
        per_sequence.append(compute_metrics(pred, np.where(valid, gt, 1.0), valid))
        if k:
            prev_gt = depths[k - 1]
            both = valid & np.isfinite(prev_gt) & (prev_gt > 0)
            d_pred = 1.0 / pred[both] - 1.0 / aligned[k - 1][both]
            d_gt = 1.0 / gt[both] - 1.0 / prev_gt[both]
            consistency.append(float(np.mean(np.abs(d_pred - d_gt))))
            gt_motion.append(float(np.mean(np.abs(d_gt))))
    return {
        "per_frame_delta1": [m["delta1"] for m in per_frame],
        "per_frame_abs_rel": [m["abs_rel"] for m in per_frame],
        "seq_delta1": [m["delta1"] for m in per_sequence],
        "seq_abs_rel": [m["abs_rel"] for m in per_sequence],
        "consistency": consistency,
        "gt_motion": gt_motion,
    }


def measure_consistency(pipe, out: Path, sequences: int, frames: int, size: int) -> dict:
    results = {"stabilised": [], "raw": []}
    for seed in SEQUENCE_SEEDS[:sequences]:
        scenes = render_trajectory(seed, frames, size, size, step=STEP, yaw_step_deg=YAW_STEP_DEG, indoor=True)
        clip = out / "clips" / f"seq{seed}.mp4"
        write_video(clip, (s.image for s in scenes), Fraction(10), crf=0)
        for mode, stabilise in (("stabilised", True), ("raw", False)):
            result = predict_video(pipe, clip, out / mode, stabilise=stabilise, overwrite=True, progress=False)
            stack = np.load(result.outputs["npz"])["inverse_depth"]
            results[mode].append(sequence_scores(stack, [s.depth for s in scenes]))
    return results


def summary(results: dict) -> dict:
    table = {}
    for mode, runs in results.items():
        table[mode] = {
            key: float(np.mean([np.mean(r[key]) for r in runs]))
            for key in (
                "per_frame_delta1",
                "per_frame_abs_rel",
                "seq_delta1",
                "seq_abs_rel",
                "consistency",
                "gt_motion",
            )
        }
    return table


def figure(results: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.2), layout="constrained")
    axes = fig.subplots(1, 3)
    for mode, colour in (("stabilised", "C0"), ("raw", "C3")):
        runs = results[mode]
        for i, run in enumerate(runs):
            label = mode if i == 0 else None
            axes[0].plot(run["seq_abs_rel"], color=colour, alpha=0.7, label=label)
            axes[1].plot(run["per_frame_abs_rel"], color=colour, alpha=0.7, label=label)
            axes[2].plot(
                range(1, len(run["consistency"]) + 1), run["consistency"], color=colour, alpha=0.7, label=label
            )
    for i, run in enumerate(results["raw"]):
        axes[2].plot(
            range(1, len(run["gt_motion"]) + 1),
            run["gt_motion"],
            color="grey",
            ls=":",
            label="ground truth's own |Δ|" if i == 0 else None,
        )
    axes[0].set_title("AbsRel, one alignment per sequence", fontsize=9)
    axes[1].set_title("AbsRel, aligned per frame", fontsize=9)
    axes[2].set_title("mean |Δ disparity − Δ GT disparity| (1/m)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("frame")
        ax.legend(fontsize=7)
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


def main():
    import torch

    from primedepth import PrimeDepthPipeline
    from primedepth.conversion.official_config import FULL_OFFICIAL_CONFIG

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sequences", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument("--full-size", type=int, default=0, help="also time full-size random weights at this size")
    parser.add_argument("--timing-frames", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    record = {"threads": 1, "device": args.device}
    mini = PrimeDepthPipeline.from_pretrained("primedepth-mini", device=args.device)
    if not args.timing_only:
        results = measure_consistency(mini, args.out, args.sequences, args.frames, args.size)
        record.update(
            summary=summary(results), sequences=args.sequences, frames=args.frames, size=args.size, results=results
        )
        figure(results, args.out / "video-consistency.png")
        print(json.dumps(record["summary"], indent=1))
    record["seconds_per_frame_mini_64"] = time_per_frame(mini, 64, args.timing_frames, args.out)
    if args.full_size:
        with torch.random.fork_rng(devices=[]):
            full = PrimeDepthPipeline.tiny_random(config=FULL_OFFICIAL_CONFIG).to(args.device)
        full.optimize(channels_last=True, drop_vae_decoder=True)
        record[f"seconds_per_frame_full_random_{args.full_size}"] = time_per_frame(
            full, args.full_size, args.timing_frames, args.out
        )
    print({k: v for k, v in record.items() if k.startswith("seconds")})
    name = "timing.json" if args.timing_only else "video-consistency.json"
    atomic_write(args.out / name, json.dumps(record, indent=1).encode())


if __name__ == "__main__":
    main()
