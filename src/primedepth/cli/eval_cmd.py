"""``primedepth eval``: score one model on one benchmark under the documented protocol (docs/evaluation.md).

Runs are resumable (re-run the same command) and shardable (``accelerate launch --multi_gpu --num_processes N $(which primedepth) eval ...``);
every run rebuilds the comparison table, box plot and image strips under the output root."""

from __future__ import annotations

import importlib
import json

import click

MODEL_HELP = (
    "PrimeDepth id or folder (default 'tiny-random'), or KIND=ARG: depth-anything-v2=DIR, marigold=DIR, "
    "python=module:factory (a callable returning a Predictor), ensemble=RUN_A,RUN_B (saved predictions of two "
    "finished runs), oracle=RUN_A,RUN_B (per-image best of two finished runs)."
)


def build_predictor(spec, *, device, dtype, seed, marigold_setting, output_root, dataset_name):
    from primedepth.evaluation import (
        DepthAnythingV2Predictor,
        EnsemblePredictor,
        MarigoldPredictor,
        PrimeDepthPredictor,
        SavedPredictor,
    )
    from primedepth.evaluation.runner import run_directory

    kind, _, arg = spec.partition("=")
    if not arg:
        return PrimeDepthPredictor(spec, device=device, dtype=dtype, seed=seed)
    if kind == "depth-anything-v2":
        return DepthAnythingV2Predictor(arg, device=device)
    if kind == "marigold":
        return MarigoldPredictor(arg, marigold_setting, device=device, seed=seed)
    if kind == "python":
        module, _, attr = arg.partition(":")
        return getattr(importlib.import_module(module), attr)()
    if kind == "ensemble":
        members = []
        for name in arg.split(","):
            run = run_directory(output_root, dataset_name, name)
            space = json.loads((run / "summary.json").read_text())["alignment"]
            members.append(SavedPredictor(run / "predictions", space, name))
        return EnsemblePredictor(members)
    raise click.BadParameter(f"unknown model kind {kind!r}", param_hint="--model")


@click.command(help=__doc__)
@click.option("--dataset", "dataset_name", required=True, type=click.Choice(["nyu", "kitti", "eth3d", "scannet", "diode", "nuscenes_c", "rabbitai"]))
@click.option("--data-root", required=True, type=click.Path(exists=True, file_okay=False), help="Dataset folder in its documented layout.")
@click.option("--output", "output_root", default="eval_results", show_default=True, type=click.Path(file_okay=False))
@click.option("--model", "model_spec", default="tiny-random", show_default=True, help=MODEL_HELP)
@click.option("--predictions", type=click.Path(exists=True, file_okay=False), help="Score saved <sample id, '/'->'__'>.npy files instead of running a model.")
@click.option("--prediction-space", type=click.Choice(["disparity", "depth"]), default="disparity", show_default=True,
              help="Space in which the saved predictions are affine-invariant (with --predictions).")
@click.option("--name", help="Run name (default: the model's).")
@click.option("--split-file", type=click.Path(exists=True, dir_okay=False), help="Split list in Marigold's format instead of discovering samples.")
@click.option("--scene-list", type=click.Path(exists=True, dir_okay=False), help="nuScenes-C scene->category JSON.")
@click.option("--allow-partial", is_flag=True, help="Evaluate even if the sample count differs from the protocol's.")
@click.option("--marigold-setting", type=click.Choice(["v1-0", "1-step"]), default="v1-0", show_default=True)
@click.option("--device", default=None, help="Torch device (default: cuda if available).")
@click.option("--dtype", default="float32", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--no-save-predictions", is_flag=True, help="Do not keep raw predictions (disables ensembles and strips).")
def command(dataset_name, data_root, output_root, model_spec, predictions, prediction_space, name, split_file, scene_list,
            allow_partial, marigold_setting, device, dtype, seed, no_save_predictions):
    from primedepth.evaluation import DATASETS, DatasetError, SavedPredictor, WeightsNotFoundError, evaluate, write_oracle_run
    from primedepth.evaluation.runner import distributed_context

    extra = {"scene_list": scene_list} if dataset_name == "nuscenes_c" else {}
    try:
        dataset = DATASETS[dataset_name](data_root, split_file=split_file, allow_partial=allow_partial, **extra)
        if model_spec.startswith("oracle="):
            a, b = model_spec.partition("=")[2].split(",")
            summary = write_oracle_run(output_root, dataset, a, b)
        else:
            if predictions:
                predictor = SavedPredictor(predictions, prediction_space, name)
            else:
                predictor = build_predictor(model_spec, device=device, dtype=dtype, seed=seed, marigold_setting=marigold_setting,
                                            output_root=output_root, dataset_name=dataset_name)
            predictor.name = name or predictor.name
            rank, world_size, barrier = distributed_context()
            summary = evaluate(dataset, predictor, output_root, rank=rank, world_size=world_size, barrier=barrier,
                               save_predictions=not no_save_predictions, progress=True)
    except (DatasetError, WeightsNotFoundError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if summary is not None:
        m = summary["metrics"]
        click.echo(f"{summary['model']} on {summary['dataset_title']}: {summary['samples']} samples, "
                   f"AbsRel {100 * m['abs_rel']:.2f}, δ1 {100 * m['delta1']:.2f} %  -> {output_root}/{dataset_name}/{summary['model']}")
