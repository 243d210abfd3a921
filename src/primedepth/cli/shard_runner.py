"""The WebDataset side of ``primedepth predict`` and ``primedepth pseudo-label``: shared options, the engine
choice (this process / ``accelerate launch`` processes, or Ray) and the report. Inputs are shard paths, fsspec
URLs or brace patterns (``shards/{00000..00099}.tar``); results are shards with the same names under OUT."""

from __future__ import annotations

import functools
import re

import click


def shard_options(command):
    """--engine / --workers / --ray-address, for commands that accept shards."""
    command = click.option(
        "--ray-address",
        default=None,
        help="Ray cluster to join with --engine ray ('auto', ray://host:10001) [default: "
        "$RAY_ADDRESS, else a local Ray instance].",
    )(command)
    command = click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Model actors with --engine ray [default: one per GPU of the cluster, else one per CPU].",
    )(command)
    command = click.option(
        "--engine",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        help="Shard inputs only: 'local' runs here (or statically sharded over `accelerate "
        "launch` processes), 'ray' runs a Ray Data pipeline with a model actor per worker "
        '(pip install "primedepth[ray]").',
    )(command)
    return command


def process_layout() -> tuple[int, int]:
    """(rank, world) under ``accelerate launch`` (GPU processes, or CPU processes as a gloo group); (0, 1)
    otherwise."""
    try:
        import torch
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())
        return state.process_index, state.num_processes
    except Exception:  # accelerate present but no distributed setup
        return 0, 1


def run_shard_command(
    inputs: list[str], out: str, make_worker, engine: str, workers: int | None, ray_address: str | None, overwrite: bool
) -> int:
    """Plan, run and report; returns the exit code (0 all done, 1 some samples or shards failed, 2 fatal)."""
    from ..data.common import DataError
    from ..distributed.shard_jobs import plan_jobs, run_local

    rank, world = (0, 1) if engine == "ray" else process_layout()
    try:
        jobs, skipped = plan_jobs(inputs, str(out), overwrite=overwrite, rank=rank, world=world)
    except DataError as err:
        click.echo(f"error: {err}", err=True)
        return 2

    def report(result) -> None:
        state = "done" if result.complete else "FAILED"
        click.echo(
            f"{state}: {result.source} -> {result.target} ({result.written} samples, {len(result.failures)} failed)",
            err=True,
        )

    try:
        if not jobs:
            results = []
        elif engine == "ray":
            try:
                from ..distributed.ray_engine import run_ray
            except ImportError:
                click.echo('error: --engine ray needs Ray: pip install "primedepth[ray]"', err=True)
                return 2
            results = run_ray(jobs, make_worker, workers=workers, address=ray_address, on_result=report)
        else:
            results = run_local(jobs, make_worker, on_result=report)
    except KeyboardInterrupt:
        click.echo("interrupted: finished shards are complete, rerun to resume", err=True)
        return 130
    except Exception as err:  # a model that cannot be loaded, a lost cluster: one line, not a traceback
        click.echo(
            f"error: {type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}", err=True
        )
        return 2
    from ..data.shards import prepare_output

    prepare_output(str(out))  # temporaries of writers killed during this run (a restarted Ray actor)
    failures = [f for r in results for f in r.failures]
    written = sum(r.written for r in results)
    click.echo(
        f"done: {len(results)} shards ({written} samples) written, {skipped} skipped (results exist), "
        f"{len(failures)} failed",
        err=True,
    )
    for failure in failures:
        click.echo(f"  failed: {failure}", err=True)
    return 1 if failures else 0


def predict_shards(
    inputs: list[str], output_dir, pipeline_kwargs: dict, worker_args: tuple, engine, workers, ray_address, overwrite
) -> int:
    """``predict`` over shards: ``pipeline_kwargs`` load the model in each worker (``model`` None: the default one),
    ``worker_args`` are the worker's (formats, call options, batch size)."""
    from ..conversion.hub_weights import default_model
    from ..distributed.shard_workers import PredictShardWorker

    if pipeline_kwargs.get("model") is None:
        model, notice = default_model()
        pipeline_kwargs = {**pipeline_kwargs, "model": model}
        if notice:
            click.echo(f"note: {notice}", err=True)
    output_dir = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*):/(?!/)", r"\1://", str(output_dir))  # click's Path folds "//"
    make_worker = functools.partial(PredictShardWorker, pipeline_kwargs, *worker_args)
    click.echo(f"model: {pipeline_kwargs['model']} ({pipeline_kwargs['precision']}), engine: {engine}", err=True)
    return run_shard_command(inputs, output_dir, make_worker, engine, workers, ray_address, overwrite)
