"""Marigold's own evaluation and ``primedepth eval --predictions`` on the same files and predictions; prints, per
case, the largest difference of any metric over the samples.

    python scripts/marigold_equivalence.py --marigold <checkout of prs-eth/Marigold> --work /tmp/equivalence

The files are those of ``tests/evaluation/test_marigold_protocol.py`` (Marigold's layouts and list format; ETH3D at
the DSLR size 4032 x 6048, which Marigold's reader requires), the predictions too: positive, with 3 % zeros and
negatives, and at half resolution. Marigold's evaluation accepts only predictions at the GT's size, so it gets the
half-resolution ones upsampled as its pipeline does (bilinear, antialias); this harness gets the half-resolution
files. Marigold's ``script/depth/eval.py`` runs unchanged in a subprocess, in an environment with its requirements
(omegaconf, tabulate, pandas), except for two stand-ins made here: torchvision (imported by its dataset module,
unused by evaluation) if it is missing, and its pandas ``MetricTracker`` (whose in-place writes pandas >= 3 refuses)
replaced by a plain running mean. Run from the repository root with ``tests`` importable (``PYTHONPATH=.``)."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from primedepth.evaluation import DATASETS, SavedPredictor, evaluate
from primedepth.evaluation.predictors import marigold_prediction_path
from tests.evaluation.test_marigold_protocol import (
    CASES,
    pipeline_upsample,
    predictions,
    save_marigold_predictions,
    write_dataset,
)

METRICS = {  # Marigold's metric function -> this harness's column
    "abs_relative_difference": "abs_rel",
    "squared_relative_difference": "sq_rel",
    "rmse_linear": "rmse",
    "rmse_log": "rmse_log",
    "log10": "log10",
    "delta1_acc": "delta1",
    "delta2_acc": "delta2",
    "delta3_acc": "delta3",
    "i_rmse": "i_rmse",
    "silog_rmse": "silog",
}
DATASET_OPTIONS = {"nyu": "eigen_valid_mask: true\n", "kitti": "kitti_bm_crop: true\nvalid_mask_crop: eigen\n"}
RUNNER = """import runpy, sys
sys.path.insert(0, ".")
import src.util.metric as metric


class Tracker:
    def __init__(self, *keys, writer=None):
        self.total, self.count = dict.fromkeys(keys, 0.0), dict.fromkeys(keys, 0)

    def reset(self):
        pass

    def update(self, key, value, n=1):
        self.total[key] += value * n
        self.count[key] += n

    def result(self):
        return {k: self.total[k] / self.count[k] for k in self.total}


metric.MetricTracker = Tracker
sys.argv = ["script/depth/eval.py", *sys.argv[1:]]
runpy.run_path("script/depth/eval.py", run_name="__main__")
"""


def marigold_environment(work: Path) -> dict:
    """PYTHONPATH with a torchvision stand-in when torchvision is not installed."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if importlib.util.find_spec("torchvision") is None:
        stub = work / "stubs" / "torchvision" / "transforms"
        stub.mkdir(parents=True, exist_ok=True)
        (stub.parent / "__init__.py").write_text("")
        (stub / "__init__.py").write_text("InterpolationMode = Resize = ColorJitter = None\n")
        (stub / "functional.py").write_text("")
        paths.insert(0, str(work / "stubs"))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def run_case(name, space, kind, data, marigold: Path, work: Path, env: dict) -> tuple[int, float, float, float]:
    root, (split, truth) = data
    dataset = DATASETS[name](root, split_file=split, allow_partial=True)
    names = dataset.config.prediction_names
    case = work / f"{name}-{space}-{kind}"
    preds = predictions(truth, space, kind)
    save_marigold_predictions(case / "ours_pred", preds, names)
    at_gt = {
        k: v if v.shape == truth[k][0].shape else pipeline_upsample(v, truth[k][0].shape) for k, v in preds.items()
    }
    save_marigold_predictions(case / "marigold_pred", at_gt, names)

    saved = SavedPredictor(case / "ours_pred", space, "ours")
    evaluate(dataset, saved, case / "ours", save_predictions=False, reports=False)
    with open(case / "ours" / name / "ours" / "per_sample.csv") as f:
        ours = {row["sample_id"]: row for row in csv.DictReader(f)}

    config = case / "dataset.yaml"
    config.write_text(
        f"name: {name}_depth\ndisp_name: equivalence\ndir: {name}\nfilenames: {split}\n" + DATASET_OPTIONS.get(name, "")
    )
    command = [
        sys.executable,
        str(work / "run_marigold_eval.py"),
        *("--prediction_dir", str(case / "marigold_pred"), "--dataset_config", str(config)),
        *("--base_data_dir", str(root.parent), "--output_dir", str(case / "marigold"), "--no_cuda"),
        *("--alignment", "least_square" if space == "depth" else "least_square_disparity"),
        *(("--alignment_max_res", "1024") if name == "eth3d" else ()),
    ]
    done = subprocess.run(command, cwd=marigold, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"Marigold's eval.py failed on {case.name}:\n{done.stderr[-3000:]}")
    sample_of = {marigold_prediction_path(sample_id, names): sample_id for sample_id in ours}
    with open(case / "marigold" / "per_sample_metrics.csv") as f:
        theirs = {sample_of[row["filename"]]: row for row in csv.DictReader(f)}
    if set(theirs) != set(ours):
        raise SystemExit(f"{case.name}: the two evaluations scored different samples")
    abs_rel = delta = relative = 0.0
    for sample_id, row in ours.items():
        for theirs_name, key in METRICS.items():
            a, b = float(row[key]), float(theirs[sample_id][theirs_name])
            if key == "abs_rel":
                abs_rel = max(abs_rel, abs(a - b))
            elif key.startswith("delta"):
                delta = max(delta, abs(a - b))
            else:
                relative = max(relative, abs(a - b) / abs(b))
    return len(ours), abs_rel, delta, relative


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--marigold", type=Path, required=True, help="a checkout of prs-eth/Marigold")
    parser.add_argument("--work", type=Path, required=True, help="an empty folder for the files (about 500 MB)")
    parser.add_argument("--only", default="", help="run the cases whose name contains this, e.g. nyu or disparity")
    args = parser.parse_args()
    marigold, work = args.marigold.resolve(), args.work.resolve()
    if not (marigold / "script/depth/eval.py").is_file():
        raise SystemExit(f"error: {marigold}: no script/depth/eval.py (not a Marigold checkout)")
    work.mkdir(parents=True, exist_ok=True)
    (work / "run_marigold_eval.py").write_text(RUNNER)
    env = marigold_environment(work)

    written = {}
    print("| dataset | alignment | predictions | n | AbsRel max abs diff | δ1–δ3 max abs diff | others max rel diff |")
    print("|---|---|---|---|---:|---:|---:|")
    for name, space, kind in CASES:
        if args.only not in f"{name}-{space}-{kind}":
            continue
        if name not in written:
            root = work / "data" / name
            root.mkdir(parents=True, exist_ok=True)
            written[name] = (root, write_dataset(name, root, eth3d_shape=(4032, 6048)))
        n, abs_rel, delta, relative = run_case(name, space, kind, written[name], marigold, work, env)
        print(f"| {name} | {space} | {kind} | {n} | {abs_rel:.1e} | {delta:.1e} | {relative:.1e} |", flush=True)


if __name__ == "__main__":
    main()
