"""``primedepth export``: the model in deployment formats (``primedepth export onnx MODEL OUT.onnx``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import caption_option, dtype_option, local_files_only_option


@click.group("export")
def command():
    """Export a model to a deployment format."""


@command.command("onnx")
@click.argument("model")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@dtype_option(
    choices=("fp32", "fp16"), default="fp32", help="Arithmetic inside the graph (input and output stay float32)."
)
@caption_option(
    help="Fixed caption baked into the graph [default: the model's, 'none' -> empty prompt; 'auto' cannot be exported]."
)
@click.option("--opset", default=None, type=int, help="ONNX opset [default: 17].")
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Run the file with onnxruntime on a random image and compare with PyTorch.",
)
@local_files_only_option()
def onnx_command(model, output, dtype, caption, opset, check, local_files_only):
    """Export MODEL's single step (VAE encoder, frozen UNet with attention maps, labeller, depth head; noise-free) to
    OUTPUT, an ONNX graph with dynamic height and width: input `images` (1, 3, H, W) in [-1, 1], H and W multiples
    of 8; output `inverse_depth` (1, H, W)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        click.echo(
            f"error: ONNX export needs the onnx extra ({err.name} missing): pip install 'primedepth[onnx]'", err=True
        )
        sys.exit(2)
    import torch

    from ..conversion.loading import WeightsNotFoundError
    from ..export.onnx import check_export, export_onnx
    from ..pipelines.pipeline import PrimeDepthPipeline

    try:
        pipe = PrimeDepthPipeline.from_pretrained(model, device="cpu", local_files_only=local_files_only)
        path = export_onnx(
            pipe, output, dtype=torch.float16 if dtype == "fp16" else torch.float32, caption=caption, opset=opset
        )
    except (WeightsNotFoundError, OSError, ValueError) as err:
        click.echo(f"error: {model}: {err}", err=True)
        sys.exit(2)
    data = path.with_name(path.name + ".data")
    click.echo(f"wrote {path}" + (f" (+ weights {data})" if data.exists() else ""), err=True)
    if check:
        difference = check_export(pipe, path, caption=caption)
        click.echo(f"onnxruntime vs PyTorch ({dtype}): max relative difference {difference:.1e}", err=True)
