"""Evaluate trained labeller checkpoints on held-out rendered scenes (PrimeDepth-mini, issue 5).

    python scripts/eval_mini.py runs/mini-primedepth/checkpoints/latest runs/mini-primedepth-random/checkpoints/latest \
        --scenes 200 --seed 7 --out runs/mini-eval.json

A checkpoint is a pipeline folder written by ``primedepth train`` (frozen parts + ``labeller/``). Each one is scored
with the trainer's noise-free validation: depth = mean of the 3 depth channels, aligned to the ground truth in
disparity space per image (``primedepth.evaluation.alignment``), metrics from ``primedepth.evaluation.metrics``,
averaged over images; sky (infinite depth) is excluded. Scenes of data seed 7 are not in the training stream
(training draws data seed 0, render seeds below 1e6; seed 7 renders seeds 7_000_021 + i).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def evaluate_checkpoint(checkpoint: str | Path, scenes: int, seed: int, resolution: int) -> dict:
    from primedepth.training.config import load_config
    from primedepth.training.trainer import Trainer

    ckpt = Path(checkpoint)
    if (ckpt.parent / "latest").is_file() and ckpt.name == "latest":
        ckpt = ckpt.parent / (ckpt.parent / "latest").read_text().strip()
    ckpt = ckpt.resolve()
    ablation = "full"
    state = ckpt / "training" / "state.json"
    if state.is_file():
        ablation = json.loads(state.read_text()).get("ablation", "full")
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(None, extra={
            "output_dir": tmp, "model": {"frozen_from": str(ckpt), "labeller_init": str(ckpt / "labeller"),
                                         "ablation": ablation},
            "data": {"resolution": [resolution, resolution], "train": [{"kind": "scenes", "seed": 0}],
                     "val": [{"kind": "scenes", "seed": seed, "length": scenes}]},
            "validation": {"samples": scenes, "batch_size": 20, "images": 0},
            "logging": {"tensorboard": False}})
        trainer = Trainer(config)
        t0 = time.time()
        result = trainer.validate(write_images=False)
        result["eval_seconds"] = round(time.time() - t0, 1)
    result.update(checkpoint=str(ckpt), ablation=ablation, scenes=scenes, seed=seed)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    rows = [evaluate_checkpoint(c, args.scenes, args.seed, args.resolution) for c in args.checkpoints]
    for r in rows:
        print(f"{r['checkpoint']}: delta1 {r['delta1']:.4f}  AbsRel {r['abs_rel']:.4f}  ({r['scenes']} scenes, "
              f"seed {r['seed']}, {r['ablation']})")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    sys.exit(main())
