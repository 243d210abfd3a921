"""``primedepth export onnx``: the exported single step, run by onnxruntime, equals the PyTorch pipeline's
noise-free step at several sizes of one graph (dynamic height and width), for tiny-random and PrimeDepth-mini."""

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from primedepth import PrimeDepthPipeline
from primedepth.cli import main
from primedepth.export.onnx import export_onnx, onnx_session, run_onnx
from primedepth.pipelines.image_processor import PrimeDepthImageProcessor, load_image


def _pipeline_depth(pipe, pixels: torch.Tensor) -> np.ndarray:
    """The pipeline's own noise-free prediction (before resizing back), fp32."""
    context = pipe._encode_prompts([""])
    return pipe.predict_tensor(pixels[None], context, generator=None).depth.float().mean(dim=1).numpy()


def _inputs(rgb_image):
    """The smooth test image at two processing sizes of different aspect: 72 x 96 and 64 x 128."""
    image = load_image(rgb_image)
    return [
        PrimeDepthImageProcessor(max_size=96).preprocess(image),
        torch.nn.functional.interpolate(image.pixels[None], size=(64, 128), mode="bilinear")[0] * 2 - 1,
    ]


def _relative(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """tiny-random exported through the CLI, with its own onnxruntime check."""
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    result = CliRunner().invoke(main, ["export", "onnx", "tiny-random", str(path)])
    assert result.exit_code == 0, result.output
    assert "onnxruntime vs PyTorch (fp32): max relative difference" in result.output
    return path


@pytest.mark.slow  # each export traces the whole model (~30 s on one core)
def test_tiny_random_round_trips_within_1e4_at_two_sizes(tiny_export, rgb_image):
    pipe = PrimeDepthPipeline.from_pretrained("tiny-random", device="cpu")  # same seeded weights as exported
    session = onnx_session(tiny_export, threads=1)
    graph = onnx.load(str(tiny_export), load_external_data=False).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, "height", "width"]
    for pixels in _inputs(rgb_image):
        got = run_onnx(session, pixels[None])
        expected = _pipeline_depth(pipe, pixels)
        assert got.shape == expected.shape == (1, *pixels.shape[-2:])
        assert _relative(got, expected) <= 1e-4


@pytest.mark.slow
def test_primedepth_mini_round_trips_within_1e4_and_fp16_stays_close(tmp_path, rgb_image):
    pipe = PrimeDepthPipeline.from_pretrained("primedepth-mini", device="cpu")
    inputs = _inputs(rgb_image)
    expected = [_pipeline_depth(pipe, pixels) for pixels in inputs]
    path = export_onnx(pipe, tmp_path / "mini.onnx")
    session = onnx_session(path, threads=1)
    for pixels, reference in zip(inputs, expected):
        assert _relative(run_onnx(session, pixels[None]), reference) <= 1e-4
    half = export_onnx(pipe, tmp_path / "mini-fp16.onnx", dtype=torch.float16)
    types = {i.data_type for i in onnx.load(str(half)).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    got = run_onnx(onnx_session(half, threads=1), inputs[0][None])
    assert got.dtype == np.float32 and 0 < _relative(got, expected[0]) <= 5e-2


def test_export_refuses_a_per_image_caption_with_one_error_line(tmp_path):
    result = CliRunner().invoke(main, ["export", "onnx", "tiny-random", str(tmp_path / "x.onnx"), "--caption", "auto"])
    assert result.exit_code == 2
    assert "error: tiny-random: caption 'auto'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.onnx").exists()
