"""How each precision configuration changes a trained model's accuracy: held-out δ1 / AbsRel of every
configuration in ``primedepth.pipelines.precision.PRECISIONS`` next to fp32, the largest relative change of the
raw output, and the time per image.

The scenes are ``primedepth.miniature.demo``'s held-out sets (data seeds 7 and 11 by default, never in the
training stream), predicted noise-free through the public pipeline and scored as ``primedepth demo`` scores them.
A configuration is within the bound when |δ1 − δ1(fp32)| <= ``DELTA1_BOUND`` and |AbsRel − AbsRel(fp32)| <=
``ABS_REL_BOUND`` on every set.
"""

from __future__ import annotations

import numpy as np

from ..pipelines.pipeline import PrimeDepthPipeline
from ..pipelines.precision import ABS_REL_BOUND, DELTA1_BOUND, PRECISIONS
from .demo import run_demo

DEFAULT_SEEDS = (7, 11)


def max_relative_difference(predictions: list[np.ndarray], references: list[np.ndarray]) -> float:
    """Worst over images of max|prediction − reference| / max|reference|."""
    return max(float(np.abs(p - r).max() / np.abs(r).max()) for p, r in zip(predictions, references))


def precision_rows(
    model: str = "primedepth-mini",
    precisions=tuple(PRECISIONS),
    seeds=DEFAULT_SEEDS,
    scenes: int = 200,
    batch_size: int = 20,
) -> list[dict]:
    """One row per (held-out seed, configuration): δ1, AbsRel, their change from fp32, the max relative output
    difference to fp32, seconds per image (pipeline only) and whether the bound holds. fp32 always runs first."""
    names = ["fp32", *[p for p in precisions if p != "fp32"]]
    rows = []
    for seed in seeds:
        reference = None
        for name in names:
            pipe = PrimeDepthPipeline.from_pretrained(model, device="cpu", local_files_only=True)
            pipe.prepare_for_inference(name)
            result = run_demo(pipe, scenes=scenes, batch_size=batch_size, seed=seed)
            m = result.metrics
            if reference is None:
                reference = result
            ref = reference.metrics
            d_delta1, d_abs_rel = m["delta1"] - ref["delta1"], m["abs_rel"] - ref["abs_rel"]
            rows.append(
                dict(
                    seed=seed,
                    precision=name,
                    description=PRECISIONS[name].description,
                    scenes=scenes,
                    delta1=m["delta1"],
                    abs_rel=m["abs_rel"],
                    delta1_change=d_delta1,
                    abs_rel_change=d_abs_rel,
                    max_relative_difference=max_relative_difference(result.inverse_depth, reference.inverse_depth),
                    seconds_per_image=result.predict_seconds / scenes,
                    within_bound=abs(d_delta1) <= DELTA1_BOUND and abs(d_abs_rel) <= ABS_REL_BOUND,
                )
            )
    return rows


def within_bound_everywhere(rows: list[dict]) -> list[str]:
    """Configurations within the bound on every held-out set of ``rows``."""
    names = dict.fromkeys(r["precision"] for r in rows)
    return [n for n in names if all(r["within_bound"] for r in rows if r["precision"] == n)]


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| held-out set | configuration | δ1 ↑ | Δδ1 (points) | AbsRel ↓ | ΔAbsRel | max rel. diff. to fp32 "
        "| s / image (64 px) | within bound |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| seed {r['seed']} ({r['scenes']} scenes) | {r['precision']} ({r['description']}) | "
            f"{r['delta1']:.4f} | {100 * r['delta1_change']:+.3f} | {r['abs_rel']:.4f} | "
            f"{r['abs_rel_change']:+.4f} | {r['max_relative_difference']:.1e} | "
            f"{r['seconds_per_image']:.4f} | {'yes' if r['within_bound'] else 'no'} |"
        )
    return "\n".join(lines)
