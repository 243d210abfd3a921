"""``primedepth bench``: time and memory of PrimeDepth, its authors' arithmetic, Marigold, a single-step SD depth
model and Depth Anything V2, side by side (random weights of the real sizes; see docs/performance.md)."""

from __future__ import annotations

import click

from .options import output_dir_option, threads_option


@click.command(name="bench")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option(
    "--resolutions",
    default=None,
    help="Comma-separated square sides. Default: 256,512 on CPU, 256,384,512,768,1024 on CUDA.",
)
@click.option(
    "--contenders",
    default=None,
    help="Comma-separated names (see --list). Default: every comparison contender for the device.",
)
@click.option("--list", "list_only", is_flag=True, help="List the contenders and exit.")
@click.option(
    "--scale",
    type=click.Choice(["full", "tiny"]),
    default="full",
    show_default=True,
    help="Real-size random weights, or tiny models (a smoke test of the machinery, meaningless times).",
)
@click.option("--warmup", default=1, show_default=True, help="Untimed runs before timing.")
@click.option("--repeats", default=3, show_default=True, help="Timed runs; the median is reported.")
@click.option("--batch-size", default=1, show_default=True, help="Images per forward pass (times are per image).")
@threads_option(expose_value=True)
@click.option("--timeout", default=None, type=float, help="Seconds allowed per contender and resolution.")
@click.option("--in-process", is_flag=True, help="Run contenders in this process (peak memory is then shared).")
@click.option(
    "--build-once",
    is_flag=True,
    help="Build each contender once and run it at every resolution (one process per contender; --timeout then "
    "covers all its resolutions). Default: built anew per contender and resolution.",
)
@output_dir_option(default="bench-results", help="Where results.json, results.md and bench.png go.")
@click.option("--plot/--no-plot", default=True, show_default=True)
def command(device, resolutions, contenders, list_only, timeout, in_process, build_once, output_dir, plot, **settings):
    """Benchmark PrimeDepth against its authors' arithmetic, Marigold, single-step SD and Depth Anything V2."""
    from ..benchmarking import report, runs
    from ..benchmarking.contenders import contenders as registry

    if list_only:
        for c in registry().values():
            click.echo(f"{c.name:24s} {c.label}  [{c.notes}]")
        return
    device = runs.resolve_device(device)
    try:
        names, sides = runs.plan(device, contenders, resolutions)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--contenders") from None
    meta = report.machine_description(device)
    meta.update({key: settings[key] for key in ("scale", "warmup", "repeats", "batch_size")})
    meta.update(contenders=names, resolutions=sides)
    log = lambda message: click.echo(message, err=True)
    results = runs.run_benchmark(
        names,
        sides,
        device=device,
        subprocesses=not in_process,
        build_once=build_once,
        timeout=timeout,
        log=log,
        **settings,
    )
    title = f"{meta.get('gpu') or meta.get('cpu', device)} ({settings['scale']})" if plot else None
    table, paths = report.write_report(results, output_dir, meta, plot_title=title)
    click.echo(table)
    click.echo("saved " + ", ".join(str(p) for p in paths))
