"""The paper's comparison tables in one call: Table 2 (KITTI, NYUv2, ETH3D, rabbitai, nuScenes-C; the given models,
the Pixel-wise-Average and Image-Oracle of PrimeDepth and Depth Anything with the oracle's picks) and Table 3
(ablation checkpoints on KITTI, rabbitai, nuScenes-C), each with the paper's published numbers beside ours, plus
Fig. 5 (per-category box plots of per-frame δ1 on nuScenes-C).

Every model is an ordinary run (``ROOT/<dataset>/<run>``), so a suite resumes and shards exactly like single runs,
and the tables are rebuilt from the files of finished runs. A dataset whose folder is absent is reported in the table
and skipped; a dataset or model that fails is reported and the others still run.

Average rank (the paper's definition, footnote 3 of Sec. 4.2): every model row and the Pixel-wise-Average are ranked
in each column (δ1 and AbsRel of every dataset run; 1 = best), at the table's precision (0.1 %), ties sharing the
better rank; a row's rank is the mean over its columns. The oracle is an upper bound and is not ranked. On the
published Table 2 numbers this gives the published ranks exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..utils.atomic import atomic_write_text
from .datasets import DATASETS, DatasetConfig, DatasetError, DepthDataset
from .ensemble import EnsemblePredictor, write_oracle_run
from .predictors import Predictor, SavedPredictor
from .report import category_box_plot, read_per_sample, write_reports
from .runner import SINGLE_PROCESS, Processes, evaluate, run_directory

MEASURES = (("delta1", "δ1 ↑", True), ("abs_rel", "AbsRel ↓", False))  # (metric, header, higher is better)
ENSEMBLE_RUN = "pixel-wise-average"
ORACLE_RUNS = {"delta1": "image-oracle-delta1", "abs_rel": "image-oracle-abs_rel"}  # the oracle picks per measure
DECIMALS = 1


@dataclass(frozen=True)
class Suite:
    """One of the paper's tables: its datasets, the pair that is averaged and oracled, and the published rows."""

    name: str
    title: str
    datasets: tuple[str, ...]
    pair: tuple[str, str] | None
    published: dict  # row key -> {"label", "values": {dataset: [δ1 %, AbsRel ×100]}, "avg_rank"}
    published_picks: dict  # dataset -> [[A %, B %] by δ1, [A %, B %] by AbsRel]


def _published() -> dict:
    return json.loads(resources.files("primedepth.evaluation").joinpath("configs", "paper_tables.json").read_text())


def load_suite(name: str, pair: tuple[str, str] | None = None) -> Suite:
    """The suite ``name`` (``paper-table2``, ``paper-table3``); ``pair`` overrides the run names averaged/oracled."""
    suites = _published()["suites"]
    if name not in suites:
        raise ValueError(f"unknown suite {name!r}; the suites are {', '.join(suites)}")
    raw = suites[name]
    default_pair = tuple(raw["pair"]) if raw["pair"] else None
    return Suite(name, raw["title"], tuple(raw["datasets"]), pair or default_pair, raw["rows"], raw["oracle_picks"])


def average_ranks(
    table: dict[str, dict[str, float]], higher_is_better: dict[str, bool], decimals: int = DECIMALS
) -> dict[str, float]:
    """``{row: mean rank}`` over the columns each row has. ``table[row][column]`` is the value shown (rounded to
    ``decimals`` before ranking, so that what looks tied is tied); rank = 1 + number of rows strictly better."""
    ranks: dict[str, list[int]] = {row: [] for row in table}
    columns = {c for values in table.values() for c in values}
    for column in columns:
        shown = {row: round(values[column], decimals) for row, values in table.items() if column in values}
        for row, v in shown.items():
            better = sum((o > v) if higher_is_better[column] else (o < v) for o in shown.values())
            ranks[row].append(better + 1)
    return {row: float(np.mean(r)) for row, r in ranks.items() if r}


@dataclass
class SuiteResult:
    """What a suite run did: per dataset ``"done"``, ``"missing: ..."`` or ``"error: ..."``; errors per run."""

    status: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    table_path: Path | None = None


def run_suite(
    suite: Suite,
    roots: dict[str, Path],
    runs: dict[str, Callable[[DepthDataset], Predictor]],
    output_root: str | Path,
    *,
    allow_partial: bool = False,
    processes: Processes = SINGLE_PROCESS,
    progress: bool = False,
    dataset_options: dict[str, dict] | None = None,
) -> SuiteResult:
    """Evaluate every run (``name -> factory(dataset)``) on every dataset of ``suite`` found at ``roots``, then the
    ensemble and oracles of ``suite.pair``, and write ``ROOT/<suite>.md`` / ``.json`` (and Fig. 5) on rank 0.
    ``dataset_options`` gives a dataset class extra arguments (``{"nuscenes_c": {"scene_list": path}}``).

    A run whose results are complete is not built again (no weights are loaded to resume a finished suite)."""
    output_root = Path(output_root)
    result, unbuildable = SuiteResult(), set()
    for name in suite.datasets:
        root = Path(roots[name]) if name in roots else None
        if root is None or not root.is_dir():
            result.status[name] = f"missing: no dataset folder at {root}" if root else "missing: no folder given"
            continue
        try:
            dataset = DATASETS[name](root, allow_partial=allow_partial, **(dataset_options or {}).get(name, {}))
        except DatasetError as exc:
            result.status[name] = f"error: {exc}"
            result.errors.append(str(exc))
            continue
        changed = False
        for run_name, factory in runs.items():
            if run_name in unbuildable or _finished(output_root, dataset, run_name):
                continue
            try:
                predictor = factory(dataset)
            except (FileNotFoundError, ValueError, RuntimeError) as exc:  # e.g. absent weights: say it once
                unbuildable.add(run_name)
                result.errors.append(f"{run_name}: {exc}")
                continue
            predictor.name = run_name
            try:
                evaluate(dataset, predictor, output_root, processes=processes, progress=progress, reports=False)
                changed = True
            except (DatasetError, FileNotFoundError, ValueError, RuntimeError) as exc:
                result.errors.append(f"{dataset.config.title} / {run_name}: {exc}")
        processes.barrier()  # every run's summary is written (by rank 0) before any process looks at the pair
        if suite.pair and all(_finished(output_root, dataset, r) for r in suite.pair):
            try:
                changed |= _combine(suite.pair, dataset, output_root, processes)
            except (FileNotFoundError, ValueError) as exc:
                result.errors.append(
                    f"{dataset.config.title} / Pixel-wise-Average and Image-Oracle of {suite.pair}: {exc}"
                )
        if changed and processes.rank == 0:
            write_reports(output_root, dataset)
        result.status[name] = "done"
    if processes.rank == 0:
        result.table_path = write_suite_report(suite, output_root, list(runs), result.status)
    return result


def _finished(output_root: Path, dataset: DepthDataset, run_name: str) -> bool:
    """Whether the run has a summary over every sample of ``dataset`` (summaries are written only once complete)."""
    summary = _summary(output_root, dataset.config.name, run_name)
    return summary is not None and summary["samples"] == len(dataset)


def _combine(pair, dataset, output_root, processes: Processes) -> bool:
    """The Pixel-wise-Average (ensemble.py's GT-free normalised mean of the saved predictions) and the per-image
    oracle of the pair, picked once by δ1 and once by AbsRel as the paper's pick percentages are per measure.
    Returns whether anything was computed."""
    todo = [name for name in (ENSEMBLE_RUN, *ORACLE_RUNS.values()) if not _finished(output_root, dataset, name)]
    if ENSEMBLE_RUN in todo:
        members = []
        for name in pair:
            run = run_directory(output_root, dataset.config.name, name)
            space = json.loads((run / "summary.json").read_text())["alignment"]
            members.append(SavedPredictor(run / "predictions", space, name))
        evaluate(dataset, EnsemblePredictor(members, ENSEMBLE_RUN), output_root, processes=processes, reports=False)
    if processes.rank == 0:
        for criterion, name in ORACLE_RUNS.items():
            if name in todo:
                write_oracle_run(output_root, dataset, *pair, criterion=criterion, name=name, reports=False)
    processes.barrier()
    return bool(todo)


def _summary(output_root: Path, dataset: str, run: str) -> dict | None:
    path = run_directory(output_root, dataset, run) / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _cell(ours: float | None, paper: float | None) -> str:
    text = "–" if ours is None else f"{ours:.{DECIMALS}f}"
    return text if paper is None else f"{text} ({paper:.{DECIMALS}f})"


def suite_table(suite: Suite, output_root: str | Path, run_names: list[str], status: dict[str, str]) -> dict:
    """Everything the table shows, from the runs on disk: per row the shown values (δ1 %, AbsRel ×100 per dataset),
    the published ones where the row's name matches, the average rank (ours, over the datasets run) and, for the
    pair, the oracle's pick percentages."""
    output_root = Path(output_root)
    done = [d for d in suite.datasets if status.get(d) == "done"]
    published = {key.lower(): row for key, row in suite.published.items()}

    def values(run):
        row = {}
        for d in done:
            s = _summary(output_root, d, run)
            if s is not None:
                row[d] = {
                    "delta1": 100 * s["metrics"]["delta1"],
                    "abs_rel": 100 * s["metrics"]["abs_rel"],
                    "samples": s["samples"],
                    "complete": s["complete"],
                }
        return row

    pair = suite.pair if suite.pair and all(r in run_names for r in suite.pair) else None
    rows = [{"key": r, "label": r, "kind": "model", "ours": values(r), "paper_key": r.lower()} for r in run_names]
    matched = {r.lower() for r in run_names} | ({"image-oracle", ENSEMBLE_RUN} if pair else set())
    rows += [
        {"key": key, "label": row["label"], "kind": "paper", "ours": {}, "paper_key": key.lower()}
        for key, row in suite.published.items()
        if key.lower() not in matched
    ]  # published rows we did not run
    if pair:
        oracle = {d: v for d in done if (v := _oracle_values(output_root, d))}
        rows.insert(
            0,
            {
                "key": "image-oracle",
                "label": "Image-Oracle (upper bound)",
                "kind": "oracle",
                "ours": oracle,
                "paper_key": "image-oracle",
            },
        )
        rows.append(
            {
                "key": ENSEMBLE_RUN,
                "label": f"Pixel-wise-Average ({pair[0]} & {pair[1]})",
                "kind": "ensemble",
                "ours": values(ENSEMBLE_RUN),
                "paper_key": ENSEMBLE_RUN,
            }
        )
    ranked = {
        row["key"]: {(d, m): v[m] for d, v in row["ours"].items() for m, _, _ in MEASURES}
        for row in rows
        if row["kind"] in ("model", "ensemble")
    }
    better = {(d, m): hib for d in done for m, _, hib in MEASURES}
    ranks = average_ranks(ranked, better)
    for row in rows:
        paper = published.get(row["paper_key"])
        row["paper"] = {d: dict(zip(("delta1", "abs_rel"), v)) for d, v in paper["values"].items()} if paper else None
        row["paper_label"] = paper["label"] if paper else None
        row["avg_rank"] = ranks.get(row["key"])
        row["paper_avg_rank"] = paper["avg_rank"] if paper else None
    picks = {d: p for d in done if pair and (p := _picks(output_root, d, pair))}
    return {
        "suite": suite.name,
        "title": suite.title,
        "datasets": list(suite.datasets),
        "status": status,
        "pair": list(pair) if pair else None,
        "rows": rows,
        "oracle_picks": picks,
        "paper_oracle_picks": suite.published_picks,
    }


def _oracle_values(output_root: Path, dataset: str) -> dict | None:
    by = {m: _summary(output_root, dataset, run) for m, run in ORACLE_RUNS.items()}
    if any(s is None for s in by.values()):
        return None
    return {m: 100 * by[m]["metrics"][m] for m in ORACLE_RUNS} | {
        "samples": by["abs_rel"]["samples"],
        "complete": by["abs_rel"]["complete"],
    }


def _picks(output_root: Path, dataset: str, pair) -> list[list[float]] | None:
    """``[[A %, B %] by δ1, [A %, B %] by AbsRel]`` of the oracle runs."""
    out = []
    for run in ORACLE_RUNS.values():
        s = _summary(output_root, dataset, run)
        if s is None:
            return None
        total = sum(s["picks"].values())
        out.append([100 * s["picks"][pair[0]] / total, 100 * s["picks"][pair[1]] / total])
    return out


def suite_markdown(table: dict) -> str:
    """The table in the paper's layout: oracle, picks, models, Pixel-wise-Average; δ1 / AbsRel per dataset and the
    average rank; every cell ``ours (published)`` where the paper has the row."""
    titles = {d: DatasetConfig.load(d).title for d in table["datasets"]}
    header = (
        "| model | "
        + " | ".join(f"{titles[d]} {label}" for d in table["datasets"] for _, label, _ in MEASURES)
        + " | avg. rank |"
    )
    lines = [
        f"# {table['title']} (δ1 % / AbsRel × 100)",
        "",
        "Each cell: ours (the paper's published number, where the row's name matches one of the paper's rows). "
        "Average rank over both measures of every dataset run, among the rows that have one.",
        "",
        header,
        "|---" * (2 * len(table["datasets"]) + 2) + "|",
    ]
    for row in table["rows"]:
        cells = []
        for d in table["datasets"]:
            for m, _, _ in MEASURES:
                ours = row["ours"].get(d, {}).get(m)
                paper = row["paper"][d][m] if row["paper"] and d in row["paper"] else None
                cells.append(_cell(ours, paper))
        rank = _cell(row["avg_rank"], row["paper_avg_rank"]) if row["kind"] != "oracle" else "–"
        named = row["kind"] == "model" and row["paper_label"] and row["paper_label"] != row["label"]
        label = row["label"] + (f" [paper: {row['paper_label']}]" if named else "")
        label += " (not run)" if row["kind"] == "paper" else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {rank} |")
        if row["kind"] == "oracle" and table["pair"]:
            a, b = table["pair"]
            picks = []
            for d in table["datasets"]:
                for k in range(2):
                    ours = table["oracle_picks"].get(d)
                    paper = table["paper_oracle_picks"].get(d)
                    text = f"{ours[k][0]:.0f}/{ours[k][1]:.0f}" if ours else "–"
                    picks.append(text + (f" ({paper[k][0]}/{paper[k][1]})" if paper else ""))
            lines.append(f"| oracle picks ({a} % / {b} %) | " + " | ".join(picks) + " | – |")
    notes = [f"- {DatasetConfig.load(d).title}: {s}" for d, s in table["status"].items() if s != "done"]
    partial = [
        d for d in table["datasets"] if any(not row["ours"][d]["complete"] for row in table["rows"] if d in row["ours"])
    ]
    notes += [
        f"- {DatasetConfig.load(d).title}: incomplete run or partial dataset, not comparable with the published numbers"
        for d in partial
    ]
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def fig5(output_root: Path, run_names: list[str], path_png: Path, path_md: Path) -> None:
    """Fig. 5: per-category box plots of per-frame δ1 on nuScenes-C for the model runs, and the numbers behind them
    (frames, median and interquartile range per category and model)."""
    dataset_dir = output_root / "nuscenes_c"
    runs = [r for r in run_names if (dataset_dir / r / "per_sample.csv").is_file()]
    if not runs:
        return
    categories = DatasetConfig.load("nuscenes_c").categories
    category_box_plot(dataset_dir, categories, path_png, runs=runs)
    lines = [
        "# Fig. 5: per-frame δ1 % on nuScenes-C by category (median [IQR q1–q3], frames)",
        "",
        "| category | " + " | ".join(runs) + " |",
        "|---" * (len(runs) + 1) + "|",
    ]
    rows = {r: read_per_sample(dataset_dir / r) for r in runs}
    for c in categories:
        cells = []
        for r in runs:
            values = [100 * float(x["delta1"]) for x in rows[r] if x["category"] == c]
            if values:
                q1, med, q3 = np.percentile(values, [25, 50, 75])
                cells.append(f"{med:.1f} [{q1:.1f}–{q3:.1f}], {len(values)}")
            else:
                cells.append("–")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    atomic_write_text(path_md, "\n".join(lines) + "\n")


def write_suite_report(suite: Suite, output_root: str | Path, run_names: list[str], status: dict[str, str]) -> Path:
    """``ROOT/<suite>.md`` and ``.json`` and, when nuScenes-C was run, ``ROOT/<suite>_fig5.png`` / ``_fig5.md``."""
    output_root = Path(output_root)
    table = suite_table(suite, output_root, run_names, status)
    atomic_write_text(output_root / f"{suite.name}.json", json.dumps(table, indent=2) + "\n")
    path = output_root / f"{suite.name}.md"
    atomic_write_text(path, suite_markdown(table))
    if status.get("nuscenes_c") == "done":
        fig5(output_root, run_names, output_root / f"{suite.name}_fig5.png", output_root / f"{suite.name}_fig5.md")
    return path
