"""Ensembling PrimeDepth with Depth Anything (the paper's Table 2) and the per-image oracle of two models.

Common scale: both models predict affine-invariant inverse depth, so each map is first brought to a common
affine-invariant normalisation *without ground truth* (``pipelines.ensemble``, the same code as the inference
ensemble): shift by its median, divide by its mean absolute deviation from the median (the MiDaS scale-shift
normalisation). The pixel-wise average of the two normalised maps is again an
affine-invariant inverse depth and goes through the usual protocol (fit to 1/GT, invert, clip). Using no GT here
keeps the ensemble a real predictor; the only GT use remains the protocol's own per-image alignment.

report.py (matplotlib, seconds to import) is imported when an oracle run is written, not with the package."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..pipelines.ensemble import average_normalised
from ..utils.atomic import atomic_write_text
from .metrics import HIGHER_IS_BETTER, METRIC_NAMES
from .predictors import Predictor
from .protocol import resize_to
from .runner import run_directory, summarise, write_per_sample


class EnsemblePredictor(Predictor):
    """Pixel-wise mean of the members' normalised predictions (members must share an alignment space)."""

    def __init__(self, members: list[Predictor], name: str | None = None):
        spaces = {m.space for m in members}
        if len(members) < 2 or len(spaces) != 1:
            raise ValueError(
                f"an ensemble needs >= 2 members predicting in one space, got {[(m.name, m.space) for m in members]}"
            )
        self.members, self.space = members, spaces.pop()
        self.name = name or "ensemble(" + "+".join(m.name for m in members) + ")"

    def input_note(self, config) -> str:
        return "members: " + "; ".join(f"{m.name}: {m.input_note(config)}" for m in self.members)

    def predict(self, sample_id, rgb):
        """The mean of the normalised members, shifted so that its minimum is 1: normalised maps are negative on
        about half of the pixels, and the protocol's disparity fit leaves non-positive predictions out (as
        Marigold's does). A constant shift changes nothing else in an affine fit."""
        preds = [m.predict(sample_id, rgb) for m in self.members]
        shape = max((p.shape for p in preds), key=lambda s: s[0] * s[1])
        mean = average_normalised([resize_to(p, shape) for p in preds])
        return mean - mean.min() + np.float32(1.0)


def read_rows(csv_path: Path) -> dict[str, dict]:
    with open(csv_path, newline="") as f:
        return {row["sample_id"]: row for row in csv.DictReader(f)}


def oracle(csv_a: Path, csv_b: Path, name_a: str, name_b: str, criterion: str = "abs_rel"):
    """Per-image pick of the better of two runs by ``criterion``; returns ``(rows, picks)`` where rows are the
    picked per-sample metric rows (with a ``picked`` column) and picks counts how often each model was chosen."""
    a, b = read_rows(csv_a), read_rows(csv_b)
    if set(a) != set(b):
        raise ValueError(f"{csv_a} and {csv_b} cover different samples ({len(a)} vs {len(b)}); finish both runs first")
    rows, picks = [], {name_a: 0, name_b: 0}
    better = max if HIGHER_IS_BETTER[criterion] else min
    for sample_id in a:
        pair = (
            (float(a[sample_id][criterion]), name_a, a[sample_id]),
            (float(b[sample_id][criterion]), name_b, b[sample_id]),
        )
        _, winner, row = better(pair, key=lambda t: t[0])
        picks[winner] += 1
        rows.append({**{k: row[k] for k in ("index", "sample_id", "category", *METRIC_NAMES)}, "picked": winner})
    return rows, picks


def write_oracle_run(
    output_root: Path,
    dataset,
    name_a: str,
    name_b: str,
    criterion: str = "abs_rel",
    name: str | None = None,
    reports: bool = True,
) -> dict:
    """Score the per-image oracle of two finished runs as a run of its own (``name``, default ``oracle(A,B)``), with
    pick counts; ``reports=False`` leaves the cross-run reports to the caller."""
    from .report import summary_markdown, write_reports

    a, b = (run_directory(output_root, dataset.config.name, n) / "per_sample.csv" for n in (name_a, name_b))
    spaces = {json.loads((p.parent / "summary.json").read_text())["alignment"] for p in (a, b)}
    rows, picks = oracle(a, b, name_a, name_b, criterion)
    name = name or f"oracle({name_a},{name_b})"
    run_dir = run_directory(output_root, dataset.config.name, name)
    write_per_sample(
        run_dir / "per_sample.csv", rows, fields=("index", "sample_id", "category", *METRIC_NAMES, "picked")
    )
    summary = {**summarise(rows, dataset, name, "/".join(sorted(spaces))), "picks": picks, "criterion": criterion}
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(run_dir / "summary.md", summary_markdown(summary))
    if reports:
        write_reports(output_root, dataset)
    return summary
