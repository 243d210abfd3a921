"""``primedepth eval``: score one model on one benchmark under the documented protocol (docs/evaluation.md).

Runs are resumable (re-run the same command) and shardable
(``accelerate launch --multi_gpu --num_processes N $(which primedepth) eval ...``); every run rebuilds the comparison
table, box plot and image strips under the output root. ``--suite paper-table2`` /
``paper-table3`` runs the paper's Table 2 / 3 (every --run on each dataset found under --data-root/<dataset>) and
writes it in the paper's layout with the published numbers beside ours."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..constants import BENCHMARK_DATASETS
from . import options as opt
from .errors import EXIT_INPUTS_FAILED, fail, model_errors, reported_errors

# primedepth.evaluation (torch, the datasets, the adapters) is imported inside the commands, so that
# ``primedepth --help`` and the other commands do not import torch.

EXISTING_DIR = click.Path(exists=True, file_okay=False)
EXISTING_FILE = click.Path(exists=True, dir_okay=False)
SPACES = click.Choice(["disparity", "depth"])
# The paper's suites as the protocol file names them (read as a file: importing the evaluation package loads torch)
PAPER_TABLES = Path(__file__).resolve().parents[1] / "evaluation" / "configs" / "paper_tables.json"
PAPER_SUITES = tuple(json.loads(PAPER_TABLES.read_text())["suites"])
SPACE_HELP = "Space in which the saved predictions are affine-invariant (with --predictions)."

MODEL_HELP = (
    "PrimeDepth id or folder (default: the model predict uses: $PRIMEDEPTH_MODEL, the converted PrimeDepth, "
    "else primedepth-mini), or KIND=ARG: depth-anything-v2=DIR, marigold=DIR, "
    "depth-anything=DIR (V1), depth-pro=DIR, marigold-v1-1=DIR, marigold-lcm=DIR, marigold-e2e-ft=DIR "
    "(any Marigold-format one-step model), python=module:factory (a callable returning a Predictor; "
    "given the dataset if it takes an argument), ensemble=RUN_A,RUN_B (saved predictions of two "
    "finished runs), oracle=RUN_A,RUN_B (per-image best of two finished runs)."
)


@click.command(help=__doc__.replace("``", ""), short_help="Score one model on one benchmark (docs/evaluation.md).")
@click.option(
    "--dataset",
    "dataset_name",
    type=click.Choice(BENCHMARK_DATASETS),
    help="The benchmark of a single run (or use --suite).",
)
@click.option(
    "--suite",
    type=click.Choice(PAPER_SUITES),
    help="Run the paper's Table 2 or 3: every --run on each of its datasets, then the table in the paper's layout.",
)
@click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    help="Dataset folder in its documented layout; with --suite, "
    "the folder holding one sub-folder per dataset (kitti, nyu, eth3d, rabbitai, nuscenes_c).",
)
@click.option(
    "--root", "roots", multiple=True, metavar="DATASET=DIR", help="With --suite: a dataset's folder elsewhere."
)
@click.option(
    "--run",
    "runs",
    multiple=True,
    metavar="NAME=MODEL",
    help="With --suite: a row of the table, MODEL as for --model. Names matching the paper's rows "
    "(primedepth, depth-anything, marigold, primedepth-no-pretrain; V.Full, V.Latent, ...) "
    "get the published numbers beside.",
)
@click.option(
    "--pair", help="With --suite paper-table2: the two runs averaged and oracled (default primedepth,depth-anything)."
)
@click.option(
    "-o",
    "--output-dir",
    "--output",
    "output_root",
    default="eval_results",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output root: one folder per dataset and run, and the comparison table.",
)
@click.option("--model", "model_spec", default=None, help=MODEL_HELP)
@click.option(
    "--predictions",
    type=EXISTING_DIR,
    help="Score saved predictions instead of running a model: <sample id, '/'->'__'>.npy, or Marigold's "
    "infer.py layout <image folder>/pred_<id>.npy.",
)
@click.option(
    "--resize-predictions",
    is_flag=True,
    help="Resize a prediction whose aspect ratio differs from its ground truth's instead of refusing it.",
)
@click.option("--prediction-space", type=SPACES, default="disparity", show_default=True, help=SPACE_HELP)
@click.option("--name", help="Run name (default: the model's).")
@click.option(
    "--split-file", type=EXISTING_FILE, help="Split list in Marigold's format instead of discovering samples."
)
@click.option(
    "--scene-list",
    type=EXISTING_FILE,
    help="nuScenes-C scene list JSON replacing the shipped one (the paper's Table 5).",
)
@click.option("--allow-partial", is_flag=True, help="Evaluate even if the sample count differs from the protocol's.")
@click.option("--marigold-setting", type=click.Choice(["v1-0", "1-step"]), default="v1-0", show_default=True)
@opt.device_option()
@opt.dtype_option(default="fp32", help="Precision of PrimeDepth (the paper's tables are fp32; see predict --help).")
@opt.threads_option()
@opt.seed_option()
@click.option(
    "--no-save-predictions", is_flag=True, help="Do not keep raw predictions (disables ensembles and strips)."
)
@reported_errors("output_root")
def command(
    dataset_name,
    suite,
    data_root,
    roots,
    runs,
    pair,
    output_root,
    model_spec,
    predictions,
    resize_predictions,
    prediction_space,
    name,
    split_file,
    scene_list,
    allow_partial,
    marigold_setting,
    device,
    dtype,
    seed,
    no_save_predictions,
):
    from primedepth.evaluation import (
        DATASETS,
        DatasetError,
        SavedPredictor,
        WeightsNotFoundError,
        evaluate,
        write_oracle_run,
    )
    from primedepth.evaluation.model_specs import run_settings
    from primedepth.evaluation.runner import distributed_context

    device = opt.device_argument(device)
    options = dict(device=device, dtype=dtype, seed=seed, marigold_setting=marigold_setting, output_root=output_root)
    if suite:
        extra = {"nuscenes_c": {"scene_list": scene_list}} if scene_list else {}
        return run_suite_command(suite, data_root, roots, runs, pair, output_root, allow_partial, options, extra)
    if not dataset_name or not data_root:
        raise click.UsageError("a single run needs --dataset and --data-root (or use --suite)")
    if not Path(data_root).is_dir():
        raise click.BadParameter(f"{data_root} is not a directory", param_hint="--data-root")

    extra = {"scene_list": scene_list} if dataset_name == "nuscenes_c" else {}
    try:
        dataset = DATASETS[dataset_name](data_root, split_file=split_file, allow_partial=allow_partial, **extra)
        if model_spec and model_spec.startswith("oracle="):
            a, b = model_spec.partition("=")[2].split(",")
            summary = write_oracle_run(output_root, dataset, a, b)
        else:
            if predictions:
                predictor = SavedPredictor(predictions, prediction_space, name)
            else:
                if model_spec is None:  # the same default as predict, video and the app
                    from ..conversion.hub_weights import default_model
                    from ..conversion.loading import EMBEDDED_MODEL

                    model_spec, notice = default_model()
                    if notice:
                        click.echo(f"note: {notice}", err=True)
                    if model_spec == EMBEDDED_MODEL:
                        name = name or EMBEDDED_MODEL  # not to be mistaken for the full PrimeDepth in the table
                predictor = predictor_for(model_spec, dataset_name=dataset_name, **options)
            predictor.name = name or predictor.name
            processes = distributed_context()
            save = not no_save_predictions
            settings = run_settings(model_spec, predictions, prediction_space, seed, dtype, marigold_setting)
            summary = evaluate(
                dataset,
                predictor,
                output_root,
                processes=processes,
                save_predictions=save,
                progress=True,
                resize_predictions=resize_predictions,
                settings=settings,
            )
    except model_errors():
        raise  # one error: line, exit 2 (reported_errors)
    except (DatasetError, WeightsNotFoundError, FileNotFoundError, ValueError) as exc:
        fail(str(exc), EXIT_INPUTS_FAILED)  # one error: line, as every command's
    if summary is not None:
        m = summary["metrics"]
        click.echo(
            f"{summary['model']} on {summary['dataset_title']}: {summary['samples']} samples, "
            f"AbsRel {100 * m['abs_rel']:.2f}, δ1 {100 * m['delta1']:.2f} %  "
            f"-> {output_root}/{dataset_name}/{summary['model']}"
        )


def predictor_for(spec, **options):
    """``evaluation.model_specs.build_predictor``, an unknown kind reported against --model."""
    from primedepth.evaluation.model_specs import UnknownModelKindError, build_predictor

    try:
        return build_predictor(spec, **options)
    except UnknownModelKindError as err:
        raise click.BadParameter(str(err), param_hint="--model") from None


def _pairs(values, option):
    out = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise click.BadParameter(f"expected NAME=VALUE, got {value!r}", param_hint=option)
        out[key] = rest
    return out


def run_suite_command(suite_name, data_root, roots, runs, pair, output_root, allow_partial, options, dataset_options):
    """``--suite``: build each --run lazily (once, or per dataset for dataset-aware python factories), run the suite
    and print where the table is; missing datasets are reported, errors make the exit code 1."""
    from primedepth.evaluation.runner import distributed_context
    from primedepth.evaluation.suite import load_suite, run_suite

    if pair and len(pair.split(",")) != 2:
        raise click.BadParameter(f"expected two run names A,B, got {pair!r}", param_hint="--pair")
    suite = load_suite(suite_name, tuple(pair.split(",")) if pair else None)
    specs = _pairs(runs, "--run")
    if not specs:
        raise click.UsageError("--suite needs at least one --run NAME=MODEL")
    folders = {d: Path(data_root) / d for d in suite.datasets} if data_root else {}
    folders.update({d: Path(p) for d, p in _pairs(roots, "--root").items()})
    cache = {}

    def factory(name, spec):
        def build(dataset):
            if name not in cache or spec.startswith("python="):
                try:
                    cache[name] = predictor_for(spec, dataset=dataset, dataset_name=dataset.config.name, **options)
                except click.BadParameter as exc:
                    raise click.BadParameter(f"{name}: {exc.message}", param_hint="--run") from exc
            return cache[name]

        return build

    processes = distributed_context()
    result = run_suite(
        suite,
        folders,
        {n: factory(n, s) for n, s in specs.items()},
        output_root,
        allow_partial=allow_partial,
        processes=processes,
        progress=True,
        dataset_options=dataset_options,
    )
    if processes.rank != 0:
        return
    for dataset, status in result.status.items():
        if status.startswith("missing"):
            click.echo(f"warning: {dataset} not run ({status})", err=True)
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    click.echo(f"{suite.title} -> {result.table_path}")
    if result.errors:
        raise SystemExit(1)
