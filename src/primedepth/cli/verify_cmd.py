"""``primedepth verify-reference``: compare our computation with the official one, tensor by tensor."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import reported_errors
from .options import trust_pickle_option

FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.command("verify-reference")
@click.option("--checkpoint", type=FILE, help="Official-style checkpoint (.ckpt).")
@click.option("--config", "config_path", type=FILE, help="Official-style JSON config of that checkpoint.")
@click.option("--vectors", type=FILE, help="safetensors file with the official inputs and intermediates.")
@click.option(
    "--manifest", type=FILE, help="JSON manifest of a full official checkpoint: check the key mapping without weights."
)
@trust_pickle_option()
@reported_errors()
def command(checkpoint, config_path, vectors, manifest, trust_pickle):
    """Exit 0 only if every stored tensor is reproduced to max|ours - ref| / max|ref| <= 1e-4 (or, with
    --manifest, every official tensor maps onto one of our parameters of the same shape)."""
    # Imported when the command runs: it loads torch (seconds), and `--help` answers in a fraction of one.
    from ..conversion.verification import TOLERANCE, verify_manifest, verify_vectors

    if manifest is None and not (checkpoint and config_path and vectors):
        raise click.UsageError("give --checkpoint, --config and --vectors, or --manifest")
    failed = False
    if manifest is not None:
        problems = verify_manifest(manifest, config_path if checkpoint is None else None)
        for p in problems:
            click.echo(f"  {p}")
        click.echo(f"manifest {manifest}: {'OK, every tensor maps' if not problems else f'{len(problems)} problems'}")
        failed |= bool(problems)
    if checkpoint is not None:
        comparisons, problems = verify_vectors(config_path, checkpoint, vectors, trust_pickle=trust_pickle)
        width = max((len(c.name) for c in comparisons), default=10)
        click.echo(f"{'tensor':<{width}}  {'shape':<20}  max|ours-ref|/max|ref|")
        for c in comparisons:
            click.echo(f"{c.name:<{width}}  {str(c.shape):<20}  {c.relative_error:.2e}  {'ok' if c.ok else 'FAIL'}")
        for p in problems:
            click.echo(f"problem: {p}")
        bad = sum(not c.ok for c in comparisons)
        worst = max((c.relative_error for c in comparisons), default=float("nan"))
        click.echo(f"{len(comparisons) - bad}/{len(comparisons)} tensors within {TOLERANCE:g} (worst {worst:.2e})")
        failed |= bool(bad or problems or not comparisons)
    sys.exit(1 if failed else 0)
