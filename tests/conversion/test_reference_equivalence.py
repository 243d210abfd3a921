"""Our model against the official computation: the stored reference vectors and the full checkpoint manifest."""

import json

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from primedepth.cli import main
from primedepth.conversion.verification import TOLERANCE, verify_manifest, verify_vectors


def test_every_reference_tensor_is_reproduced(reference_dir):
    comparisons, problems = verify_vectors(
        reference_dir / "official_tiny_config.json",
        reference_dir / "official_tiny.ckpt",
        reference_dir / "official_tiny_io.safetensors",
    )
    assert problems == []
    stored = load_file(str(reference_dir / "official_tiny_io.safetensors"))
    inputs = {"image", "context", "noise_posterior", "noise_t"}
    assert len(comparisons) == sum(k.split(".", 1)[1] not in inputs for k in stored) == 102
    worst = max(comparisons, key=lambda c: c.relative_error)
    assert worst.relative_error <= TOLERANCE, worst
    # Non-multiple-of-8 case b: the official output is 72 x 88 for a 75 x 93 image.
    assert next(c for c in comparisons if c.name == "b.depth").shape == (1, 3, 72, 88)


def test_full_manifest_maps_one_to_one(reference_dir):
    assert verify_manifest(reference_dir / "official_full_manifest.json") == []


def test_manifest_check_detects_a_missing_and_a_misshapen_tensor(reference_dir, tmp_path):
    manifest = json.loads((reference_dir / "official_full_manifest.json").read_text())
    tensors = manifest["tensors"]
    tensors.pop("labeller.convs_merge.3.bias")
    tensors["model.diffusion_model.out.2.bias"] = [5]
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    problems = verify_manifest(tmp_path / "m.json")
    assert any("convs_merge.3.bias" in p or "merge_convs.3.bias" in p for p in problems)
    assert any("conv_out.bias" in p for p in problems)


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_verify_cli_passes_on_reference_and_fails_on_a_perturbed_vector(reference_dir, tmp_path):
    args = [
        "verify-reference",
        "--checkpoint",
        str(reference_dir / "official_tiny.ckpt"),
        "--config",
        str(reference_dir / "official_tiny_config.json"),
    ]
    ok = CliRunner().invoke(main, args + ["--vectors", str(reference_dir / "official_tiny_io.safetensors")])
    assert ok.exit_code == 0, ok.output
    assert "102/102 tensors within" in ok.output

    vectors = load_file(str(reference_dir / "official_tiny_io.safetensors"))
    vectors["a.merged.7"] = vectors["a.merged.7"] * (1 + 1e-3)
    save_file(vectors, str(tmp_path / "bad.safetensors"))
    bad = CliRunner().invoke(main, args + ["--vectors", str(tmp_path / "bad.safetensors")])
    assert bad.exit_code == 1
    assert "a.merged.7" in bad.output and "FAIL" in bad.output
