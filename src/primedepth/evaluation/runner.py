"""The resumable, shardable evaluation loop.

Each process takes every ``world_size``-th sample (``index % world_size == rank``), scores it and appends one CSV row
to its own ``parts/rank<r>.csv`` (flushed and fsynced, after the raw prediction is saved), so a run killed at any
point loses at most the sample in flight. On restart, every sample with a row in any part file is skipped. Once all
processes are done, rank 0 merges the parts into ``per_sample.csv`` and writes ``summary.json`` / ``summary.md``
and the cross-run report. Under ``accelerate launch`` rank and world size come from accelerate.

report.py (matplotlib, seconds to import) is imported when a run is merged: ``primedepth.evaluation`` is also
imported by commands that only align or score, which draw nothing."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..utils.atomic import atomic_save_npy, atomic_write_text, remove_stale_temps
from .datasets.base import DepthDataset
from .metrics import METRIC_NAMES
from .predictors import Predictor, prediction_filename
from .protocol import resize_long_side, score_prediction

FIELDS = ("index", "sample_id", "category", *METRIC_NAMES, "seconds")
SETTINGS_FILE = "settings.json"


class RunSettingsError(ValueError):
    """A run folder holds rows scored with other settings than the ones asked for now."""


def check_run_settings(run_dir: Path, settings: dict | None, record: bool = True) -> None:
    """Record ``settings`` (what decides a prediction: model, seed, precision, ...) beside the rows of a new run, and
    refuse to resume a run scored with other settings: mixing both into one summary would report numbers that no
    single configuration produced. A run folder from before settings were recorded adopts the current ones. Every
    process checks (so all of them stop alike); one ``record``s."""
    if settings is None:
        return
    path = run_dir / SETTINGS_FILE
    wanted = json.loads(json.dumps(settings))  # the JSON form, as it will be read back
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunSettingsError(f"{path}: not valid JSON ({err}); remove the run folder to start again") from None
        if isinstance(recorded, dict) and recorded != wanted:
            changed = sorted(k for k in {*recorded, *wanted} if recorded.get(k) != wanted.get(k))
            differences = ", ".join(f"{k} {recorded.get(k)!r} now {wanted.get(k)!r}" for k in changed)
            raise RunSettingsError(
                f"{path}: this run was scored with other settings ({differences}); rerun with the recorded "
                f"settings to resume it, or start a separate run with --name or --output (or remove {run_dir})"
            )
        return
    if record:
        atomic_write_text(path, json.dumps(wanted, indent=2, sort_keys=True) + "\n")


def run_directory(output_root: str | Path, dataset_name: str, model_name: str) -> Path:
    return Path(output_root) / dataset_name / model_name


def _no_barrier() -> None:
    pass


@dataclass(frozen=True)
class Processes:
    """The processes sharing a run: this one's ``rank``, their number and ``barrier``, which returns once every
    process has called it."""

    rank: int = 0
    world_size: int = 1
    barrier: Callable[[], None] = _no_barrier


SINGLE_PROCESS = Processes()


def distributed_context() -> Processes:
    """The processes from accelerate when launched with several, else a single one. accelerate is imported only
    then: single-process runs do not need it."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())
        if state.num_processes != int(os.environ["WORLD_SIZE"]):
            raise RuntimeError(
                f"accelerate set up {state.num_processes} process(es), WORLD_SIZE is {os.environ['WORLD_SIZE']}"
            )
        return Processes(state.process_index, state.num_processes, state.wait_for_everyone)
    return SINGLE_PROCESS


def read_part(path: Path, repair: bool = False) -> list[dict]:
    """Complete rows of one part file. A trailing line cut by a kill is dropped (and, with ``repair``, removed from
    the file so that appends continue on a clean line)."""
    if not path.is_file():
        return []
    header = ",".join(FIELDS) + "\n"
    lines = path.read_text().splitlines(keepends=True)
    header_ok = bool(lines) and lines[0] == header
    rows, good = [], []
    for line in lines[1:] if header_ok else lines:
        values = next(csv.reader([line])) if line.endswith("\n") else []
        if len(values) == len(FIELDS) and values[0] != "index":
            rows.append(dict(zip(FIELDS, values)))
            good.append(line)
    if repair and (not header_ok or len(good) != len(lines) - 1):
        atomic_write_text(path, header + "".join(good))
    return rows


def completed(run_dir: Path) -> dict[str, dict]:
    rows = {}
    for part in sorted((run_dir / "parts").glob("rank*.csv")):
        for row in read_part(part):
            rows.setdefault(row["sample_id"], row)
    return rows


def evaluate(
    dataset: DepthDataset,
    predictor: Predictor,
    output_root: str | Path,
    *,
    processes: Processes = SINGLE_PROCESS,
    save_predictions: bool = True,
    merge: bool = True,
    progress: bool = False,
    reports: bool = True,
    resize_predictions: bool = False,
    settings: dict | None = None,
) -> dict | None:
    """Evaluate ``predictor`` on this process's share of ``dataset``; returns the summary on the merging process
    (rank 0 of ``processes``). ``reports=False`` leaves the cross-run reports to the caller (a suite draws them once
    per dataset). ``resize_predictions`` resizes a prediction of another aspect ratio than its GT instead of
    refusing it. ``settings`` (JSON-able) are recorded with the run; resuming under other ones raises
    ``RunSettingsError``."""
    rank = processes.rank
    run_dir = run_directory(output_root, dataset.config.name, predictor.name)
    remove_stale_temps(run_dir)  # temporaries of killed runs
    check_run_settings(run_dir, settings, record=rank == 0)
    part = run_dir / "parts" / f"rank{rank}.csv"
    if not part.is_file():
        atomic_write_text(part, ",".join(FIELDS) + "\n")
    read_part(part, repair=True)
    done = completed(run_dir)
    predictor.prepare(dataset.config)
    todo = [i for i in range(rank, len(dataset), processes.world_size) if dataset.entries[i][0] not in done]
    if progress:
        todo = tqdm(todo, desc=f"{dataset.config.name}/{predictor.name} rank {rank}", unit="img")
    with open(part, "a", newline="") as f:
        for index in todo:
            f.write(_score_one(dataset, predictor, index, run_dir, save_predictions, resize_predictions))
            f.flush()
            os.fsync(f.fileno())
    processes.barrier()
    if merge and rank == 0:
        return merge_run(dataset, predictor, run_dir, output_root, reports)
    return None


def _score_one(dataset, predictor, index, run_dir, save_predictions, resize_predictions=False) -> str:
    sample = dataset[index]
    rgb = sample.rgb if predictor.resizes_input else resize_long_side(sample.rgb, dataset.config.processing_res)
    start = time.perf_counter()
    pred = predictor.predict(sample.sample_id, rgb)
    seconds = time.perf_counter() - start
    metrics, _ = score_prediction(
        pred,
        sample,
        dataset.config,
        predictor.space,
        source=predictor.source(sample.sample_id),
        resize_predictions=resize_predictions,
    )
    if save_predictions:
        atomic_save_npy(run_dir / "predictions" / prediction_filename(sample.sample_id), pred.astype(np.float32))
    row = {"index": index, "sample_id": sample.sample_id, "category": sample.category, **metrics, "seconds": seconds}
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([row[k] for k in FIELDS])
    return buffer.getvalue()


def summarise(rows: list[dict], dataset: DepthDataset, model: str, space: str) -> dict:
    """Means over images of every metric (overall and per category), plus what is needed to read them."""

    def means(subset):
        return {m: float(np.mean([float(r[m]) for r in subset])) for m in METRIC_NAMES}

    categories = sorted({r["category"] for r in rows if r["category"]})
    by_category = {c: [r for r in rows if r["category"] == c] for c in categories}
    seconds = float(np.mean([float(r["seconds"]) for r in rows])) if rows and "seconds" in rows[0] else None
    return {
        "dataset": dataset.config.name,
        "dataset_title": dataset.config.title,
        "model": model,
        "alignment": space,
        "samples": len(rows),
        "expected_samples": dataset.config.expected_count,
        "complete": len(rows) == len(dataset) and not dataset.partial,
        "metrics": means(rows),
        "categories": {c: {"samples": len(subset), **means(subset)} for c, subset in by_category.items()},
        "seconds_per_sample": seconds,
    }


def write_per_sample(path: Path, rows: list[dict], fields=FIELDS) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def merge_run(dataset, predictor, run_dir, output_root, reports: bool = True) -> dict:
    from .report import summary_markdown, write_reports

    rows = sorted(completed(run_dir).values(), key=lambda r: int(r["index"]))
    if not rows:
        raise RuntimeError(f"{run_dir}: no scored sample to summarise")
    write_per_sample(run_dir / "per_sample.csv", rows)
    summary = summarise(rows, dataset, predictor.name, predictor.space)
    summary["input"] = predictor.input_note(dataset.config)
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(run_dir / "summary.md", summary_markdown(summary))
    if reports:
        write_reports(output_root, dataset)
    return summary
