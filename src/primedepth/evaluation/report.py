"""What people look at: the per-run summary, the Table-2-style comparison across runs, the per-category box plot of
per-frame delta1 (the paper's Fig. 5 for nuScenes-C) and image strips of the worst and best samples.

Everything is rebuilt from the files of finished runs under the output root, so it is the same whether runs were
done together, one after another, or on different machines and copied together."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..outputs.colour import show_depth
from ..utils.atomic import atomic_path, atomic_write_text
from .datasets import DATASETS
from .metrics import HIGHER_IS_BETTER
from .predictors import SavedPredictor
from .protocol import score_prediction

HEADLINE = (("delta1", "δ1 % ↑", 100.0), ("abs_rel", "AbsRel ×100 ↓", 100.0))


def summary_markdown(summary: dict) -> str:
    """One run's summary: headline numbers, all metrics, per-category rows."""
    head = f"# {summary['model']} on {summary['dataset_title']}\n\n"
    head += f"{summary['samples']} / {summary['expected_samples']} samples, alignment in {summary['alignment']} space"
    head += "" if summary["complete"] else " (**incomplete or partial dataset**)"
    if summary.get("input"):
        head += f"; model input: {summary['input']}"
    if summary.get("picks"):
        head += "; oracle picks: " + ", ".join(f"{k} {v}" for k, v in summary["picks"].items())
    cols = ["AbsRel×100", "SqRel", "RMSE", "RMSE-log", "log10", "δ1 %", "δ2 %", "δ3 %", "iRMSE", "SILog"]
    lines = ["| subset | n | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]

    def fmt(m):
        return [
            f"{100 * m['abs_rel']:.2f}",
            f"{m['sq_rel']:.4f}",
            f"{m['rmse']:.4f}",
            f"{m['rmse_log']:.4f}",
            f"{m['log10']:.4f}",
            *(f"{100 * m[d]:.2f}" for d in ("delta1", "delta2", "delta3")),
            f"{m['i_rmse']:.4f}" if "i_rmse" in m else "",
            f"{m['silog']:.3f}",
        ]

    lines.append("| all | " + str(summary["samples"]) + " | " + " | ".join(fmt(summary["metrics"])) + " |")
    for name, m in summary["categories"].items():
        lines.append(f"| {name} | {m['samples']} | " + " | ".join(fmt(m)) + " |")
    return head + "\n\n" + "\n".join(lines) + "\n"


def load_summaries(output_root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(output_root).glob("*/*/summary.json"))]


def comparison_table(summaries: list[dict]) -> str:
    """Markdown like the paper's Table 2: a row per model, δ1 and AbsRel per dataset, and the average rank over all
    those columns (1 = best; a model is ranked only on the columns it has)."""
    order = [d for d in DATASETS if any(s["dataset"] == d for s in summaries)]
    models = sorted({s["model"] for s in summaries})
    value = {(s["model"], s["dataset"], key): s["metrics"][key] for s in summaries for key, _, _ in HEADLINE}
    title = {s["dataset"]: s["dataset_title"] + ("" if s["complete"] else "*") for s in summaries}
    ranks = {m: [] for m in models}
    for d in order:
        for key, _, _ in HEADLINE:
            scored = [(value[(m, d, key)], m) for m in models if (m, d, key) in value]
            for m in models:
                if (m, d, key) in value:
                    v = value[(m, d, key)]
                    better = sum((o > v) if HIGHER_IS_BETTER[key] else (o < v) for o, _ in scored)
                    ranks[m].append(better + 1)
    columns = [f"{title[d]} {label}" for d in order for _, label, _ in HEADLINE]
    header = "| model | " + " | ".join(columns) + " | avg. rank |"
    lines = [header, "|---" * (2 * len(order) + 2) + "|"]
    for m in sorted(models, key=lambda m: (np.mean(ranks[m]) if ranks[m] else np.inf, m)):
        cells = [f"{value[(m, d, k)] * f:.1f}" if (m, d, k) in value else "–" for d in order for k, _, f in HEADLINE]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {np.mean(ranks[m]):.2f} |")
    note = ""
    if any("*" in t for t in title.values()):
        note = "\n\\* incomplete run or partial dataset: not comparable with published numbers.\n"
    return "\n".join(lines) + "\n" + note


def read_per_sample(run_dir: Path) -> list[dict]:
    with open(run_dir / "per_sample.csv", newline="") as f:
        return list(csv.DictReader(f))


def category_box_plot(
    dataset_dir: Path, categories: tuple[str, ...], path: Path, runs: list[str] | None = None
) -> None:
    """Per-category box plot of per-frame δ1, one box per model in each category (the paper's Fig. 5): median line,
    interquartile box, whiskers to 1.5 IQR. ``runs`` restricts and orders the runs (default: all, sorted)."""
    if runs is not None:
        names = runs
    else:
        names = sorted(d.name for d in dataset_dir.iterdir() if (d / "per_sample.csv").is_file())
    runs = {name: read_per_sample(dataset_dir / name) for name in names}
    fig = Figure(figsize=(max(6, 1.6 * len(categories) * max(1, len(runs)) ** 0.5), 4), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(runs))
    for j, (model, rows) in enumerate(runs.items()):
        data = [[100 * float(r["delta1"]) for r in rows if r["category"] == c] for c in categories]
        positions = [i + (j - (len(runs) - 1) / 2) * width for i in range(len(categories))]
        keep = [k for k, values in enumerate(data) if values]
        box = ax.boxplot(
            [data[k] for k in keep],
            positions=[positions[k] for k in keep],
            widths=width * 0.9,
            patch_artist=True,
            showfliers=False,
            medianprops=dict(color="black"),
        )
        for patch in box["boxes"]:
            patch.set_facecolor(f"C{j}")
        ax.plot([], [], color=f"C{j}", linewidth=8, label=model)
    ax.set_xticks(range(len(categories)), categories, rotation=20)
    ax.set_ylabel("per-frame δ1 (%)")
    ax.legend(fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def image_strips(dataset, dataset_dir: Path, path_worst: Path, path_best: Path, count: int = 3) -> None:
    """RGB, GT and every model's aligned depth for the ``count`` worst and best samples by AbsRel of the reference
    model (PrimeDepth when present, else the first run); models without a saved prediction are left out."""
    runs = [
        d for d in sorted(dataset_dir.iterdir()) if (d / "per_sample.csv").is_file() and (d / "predictions").is_dir()
    ]
    if not runs:
        return
    reference = next((d for d in runs if d.name.startswith("primedepth")), runs[0])
    rows = sorted(read_per_sample(reference), key=lambda r: float(r["abs_rel"]))
    position = {e[0]: i for i, e in enumerate(dataset.entries)}
    for picked, path in ((rows[::-1][:count], path_worst), (rows[:count], path_best)):
        fig = Figure(figsize=(2.6 * (2 + len(runs)), 2.2 * len(picked)), layout="constrained")
        axes = fig.subplots(len(picked), 2 + len(runs), squeeze=False)
        for i, row in enumerate(picked):
            sample = dataset[position[row["sample_id"]]]
            gt = np.where(sample.valid, sample.depth, np.nan)
            vmin, vmax = np.nanpercentile(gt, [2, 98])
            panels = [("RGB", sample.rgb), ("GT", gt)]
            for run in runs:
                summary = json.loads((run / "summary.json").read_text())
                try:
                    saved = SavedPredictor(run / "predictions", summary["alignment"])
                    pred = saved.predict(sample.sample_id, sample.rgb)
                except FileNotFoundError:
                    continue
                # The run has scored (or refused) this prediction already; here it is only drawn.
                metrics, depth = score_prediction(
                    pred, sample, dataset.config, summary["alignment"], resize_predictions=True
                )
                panels.append((f"{run.name}\nAbsRel {100 * metrics['abs_rel']:.1f}", depth))
            for ax, (label, image) in zip(axes[i], panels):
                if image.ndim == 3:
                    ax.imshow(image, interpolation="nearest")
                else:
                    show_depth(ax, image, vmin, vmax)
                ax.set_title(label, fontsize=7)
                ax.set_xticks([]), ax.set_yticks([])
            for ax in axes[i][len(panels) :]:
                ax.axis("off")
            axes[i][0].set_ylabel(row["sample_id"][-30:], fontsize=6)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")


def write_reports(output_root: str | Path, dataset) -> None:
    """Rebuild ``table.md`` over all runs and, for ``dataset``, the box plot (categorised datasets) and strips."""
    output_root = Path(output_root)
    atomic_write_text(output_root / "table.md", comparison_table(load_summaries(output_root)))
    dataset_dir = output_root / dataset.config.name
    if dataset.config.categories:
        category_box_plot(dataset_dir, dataset.config.categories, dataset_dir / "boxplot_delta1.png")
    image_strips(dataset, dataset_dir, dataset_dir / "strips_worst.png", dataset_dir / "strips_best.png")
