"""Metric depth in the miniature world: a small metric prior trained on rendered scenes (several training seeds),
PrimeDepth-mini, and their fusion (``outputs.metric_fusion``), scored on held-out rendered scenes with metric ground
truth and known intrinsics.

Rows: the prior alone (metric, no alignment), the fusion (metric, no alignment; the global fit, and with the
low-frequency correction at two grid sizes), PrimeDepth-mini aligned to the ground truth per image (scale and shift
in disparity: an upper bound that needs the answer). Columns: AbsRel and δ1 against the metric ground truth, the
depth-boundary F1 (Depth Pro's definition, from the ground-truth occluding contours), and the prior's focal-length
error. Mean ± standard deviation over the prior's training seeds; the upper bound does not depend on them.

    nice -n 10 python scripts/metric_miniature.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from primedepth.alignment import align_to_depth
from primedepth.constants import HELD_OUT_SEED
from primedepth.data.scenes import held_out_scenes
from primedepth.miniature.metric_prior import TRAIN_DATA_SEED, metric_scores, train_metric_prior, training_scenes
from primedepth.outputs.metric_fusion import LowFrequencyCorrection, fuse_with_prior
from primedepth.pipelines.pipeline import PrimeDepthPipeline


def mean_scores(rows: list[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="training seeds of the prior")
    parser.add_argument("--train-scenes", type=int, default=800)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--test-scenes", type=int, default=100)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument(
        "--test-data-seed",
        type=int,
        default=HELD_OUT_SEED,
        help="data seed of the test scenes (default: the held-out one; another, e.g. 11, to choose settings on)",
    )
    parser.add_argument("--width", type=int, default=16, help="channels of the prior's first layer")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save-prior", default=None, help="folder to save the first seed's prior in (shipping)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()

    scenes = held_out_scenes(args.test_scenes, args.resolution, args.test_data_seed)
    pipe = PrimeDepthPipeline.from_pretrained("primedepth-mini", device="cpu")
    out = pipe([s.image for s in scenes], caption=[s.caption for s in scenes], noise="none", batch_size=20)
    inverse = out.inverse_depth
    valid = [np.isfinite(s.depth) & (s.depth > 0) for s in scenes]
    upper = []
    for s, inv, ok in zip(scenes, inverse, valid):
        gt = np.where(ok, s.depth, 0).astype(np.float32)
        aligned = align_to_depth(inv, gt, ok, "disparity", (float(gt[ok].min()), float(gt[ok].max())))
        upper.append(metric_scores(aligned, s.depth, ok))
    print(f"PrimeDepth-mini on {len(scenes)} test scenes ({time.perf_counter() - start:.0f} s)", flush=True)

    data = training_scenes(args.train_scenes, args.resolution)
    per_seed = {
        "prior alone": [],
        "fusion (global fit: the default)": [],
        "fusion + low-frequency correction (32 cells)": [],
        "fusion + coarser correction (8 cells)": [],
    }
    focal_errors = []
    for seed in seeds:
        t = time.perf_counter()
        model = train_metric_prior(
            seed, data, steps=args.steps, width=args.width, log=lambda line: print(line, flush=True)
        )
        if args.save_prior and seed == seeds[0]:
            model.save_pretrained(
                args.save_prior,
                {
                    "training": f"{args.train_scenes} rendered {args.resolution}x{args.resolution} scenes of data seed "
                    f"{TRAIN_DATA_SEED}, {args.steps} steps, batch 16, seed {seed} (scripts/metric_miniature.py)",
                    "licence": "MIT",
                },
            )
        rows = {k: [] for k in per_seed}
        errors = []
        for s, inv, ok in zip(scenes, inverse, valid):
            prior, focal = model.predict(s.image)
            errors.append(abs(focal / s.intrinsics[0, 0] - 1))
            rows["prior alone"].append(metric_scores(prior, s.depth, ok))
            for name, options in (
                ("fusion (global fit: the default)", {}),
                ("fusion + low-frequency correction (32 cells)", {"low_frequency": True}),
                ("fusion + coarser correction (8 cells)", {"low_frequency": LowFrequencyCorrection(grid=8, sigma=1.0)}),
            ):
                rows[name].append(metric_scores(fuse_with_prior(inv, prior, **options).depth, s.depth, ok))
        for k in per_seed:
            per_seed[k].append(mean_scores(rows[k]))
        focal_errors.append(float(np.mean(errors)))
        print(
            f"seed {seed}: trained and scored in {time.perf_counter() - t:.0f} s; "
            + "; ".join(f"{k}: " + ", ".join(f"{m} {v:.4f}" for m, v in per_seed[k][-1].items()) for k in per_seed),
            flush=True,
        )

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"

    print()
    print(
        f"Test scenes: {len(scenes)} of data seed {args.test_data_seed} at {args.resolution}x{args.resolution}; "
        f"prior trained on "
        f"{args.train_scenes} scenes, {args.steps} steps, seeds {seeds} (mean ± std over seeds)"
    )
    print()
    print("| method | AbsRel (metric) | δ1 (metric) | boundary F1 |")
    print("|---|---|---|---|")
    for name, runs in per_seed.items():
        print(
            f"| {name} | " + " | ".join(cell([r[m] for r in runs]) for m in ("abs_rel", "delta1", "boundary_f1")) + " |"
        )
    up = mean_scores(upper)
    print(
        f"| PrimeDepth-mini aligned to the ground truth (upper bound) | {up['abs_rel']:.4f} | {up['delta1']:.4f} | "
        f"{up['boundary_f1']:.4f} |"
    )
    print()
    constant = math.exp(float(data[2].mean()))  # the naive estimate: the training scenes' mean focal length / width
    naive = np.mean([abs(constant * args.resolution / s.intrinsics[0, 0] - 1) for s in scenes])
    print(
        f"prior's focal length: mean relative error {cell(focal_errors)}; naive baseline (the training scenes' mean "
        f"focal length for every image) {naive:.4f}; true field of view 50-75 degrees"
    )
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
