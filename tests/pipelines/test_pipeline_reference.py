"""The production path against the official vectors: convert the reference checkpoint, load it with the public
``from_pretrained``, and run the pipeline's own forward on the stored inputs and noises (fastest and low-memory)."""

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from primedepth import PrimeDepthPipeline
from primedepth.cli import main

CASES = ("a", "b")


@pytest.fixture(scope="module")
def converted_reference(reference_dir, tiny_official_with_text):
    src = tiny_official_with_text
    result = CliRunner().invoke(
        main,
        [
            "convert",
            str(src / "tiny_with_text.ckpt"),
            str(src / "model"),
            "--config",
            str(reference_dir / "official_tiny_config.json"),
            "--tokenizer",
            str(src / "tokenizer"),
            "--local-files-only",
        ],
    )
    assert result.exit_code == 0, result.output
    return src / "model"


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape
    return float((ours.double() - ref.double()).abs().max() / ref.abs().max())


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
@pytest.mark.parametrize("low_memory", [False, True], ids=["fastest", "low_memory"])
def test_from_pretrained_pipeline_reproduces_the_reference(reference_dir, converted_reference, low_memory):
    vectors = load_file(str(reference_dir / "official_tiny_io.safetensors"))
    pipe = PrimeDepthPipeline.from_pretrained(converted_reference, device="cpu", torch_dtype=torch.float32)
    pipe.optimize(channels_last=True, drop_vae_decoder=True)
    for case in CASES:
        out = pipe.predict_with_noise(
            vectors[f"{case}.image"],
            vectors[f"{case}.context"],
            vectors[f"{case}.noise_posterior"],
            vectors[f"{case}.noise_t"],
            segmentation=True,
            low_memory=low_memory,
        )
        assert relative_error(out.depth.float(), vectors[f"{case}.depth"]) <= 1e-4
        assert relative_error(out.segmentation.float(), vectors[f"{case}.segmentation"]) <= 1e-4
        # Perturbing one input must move the result well beyond the tolerance (the comparison can fail).
        worse = pipe.predict_with_noise(
            vectors[f"{case}.image"],
            vectors[f"{case}.context"],
            vectors[f"{case}.noise_posterior"] * 1.01,
            vectors[f"{case}.noise_t"],
            low_memory=low_memory,
        )
        assert relative_error(worse.depth.float(), vectors[f"{case}.depth"]) > 1e-3
