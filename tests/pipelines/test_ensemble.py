"""The paper's ensemble at inference: PrimeDepth + Depth Anything, the same normalisation as the evaluation's."""

import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from primedepth.cli import main
from primedepth.conversion.loading import WeightsNotFoundError
from primedepth.evaluation import DepthAnythingV2Predictor, EnsemblePredictor, PrimeDepthPredictor
from primedepth.pipelines.depth_anything import DepthAnything, parse_member
from primedepth.pipelines.ensemble import average_normalised, normalise_affine_invariant


def test_normalisation_by_hand():
    # median 2, mean absolute deviation (1 + 0 + 0 + 3) / 4 = 1
    np.testing.assert_allclose(normalise_affine_invariant(np.array([1.0, 2.0, 2.0, 5.0])), [-1, 0, 0, 3])
    a, b = np.array([[1.0, 2.0, 2.0, 5.0]]), np.array([[10.0, 30.0, 30.0, 90.0]])  # b = 20 a - 10
    np.testing.assert_allclose(average_normalised([a, b]), [[-1, 0, 0, 3]], atol=1e-6)
    assert np.all(normalise_affine_invariant(np.full(3, 7.0)) == 0)
    with pytest.raises(ValueError, match="one shape"):
        average_normalised([a, a.T])


def test_member_names():
    assert parse_member("depth-anything-v2") == ("depth-anything-v2", "depth-anything/Depth-Anything-V2-Large-hf")
    assert parse_member("depth-anything-v2-small=/x") == ("depth-anything-v2-small", "/x")
    with pytest.raises(ValueError, match="unknown ensemble member 'marigold'"):
        parse_member("marigold")


def test_predict_ensemble_equals_the_evaluations(tiny_depth_anything, tmp_path, rgb_image):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(tmp_path / "x.png"),
            "-o",
            str(tmp_path / "o"),
            "--model",
            "tiny-random",
            "--caption",
            "none",
            "--format",
            "npy,png16",
            "--ensemble",
            f"depth-anything-v2={tiny_depth_anything}",
            "--save-members",
        ],
    )
    assert result.exit_code == 0, result.output
    combined = np.load(tmp_path / "o" / "x.npy")
    primedepth = np.load(tmp_path / "o" / "x.primedepth.npy")
    other = np.load(tmp_path / "o" / "x.depth-anything-v2.npy")
    assert combined.shape == primedepth.shape == other.shape == rgb_image.shape[:2]
    assert (tmp_path / "o" / "x.depth-anything-v2_16bit.png").is_file()

    evaluation = EnsemblePredictor(
        [PrimeDepthPredictor("tiny-random", device="cpu"), DepthAnythingV2Predictor(tiny_depth_anything, device="cpu")]
    )
    # the two paths differ only in float summation order (channels_last, thread count): maps of unit MAD; the
    # evaluation shifts the mean to a minimum of 1 (its disparity fit leaves non-positive predictions out)
    np.testing.assert_allclose(combined - combined.min() + 1, evaluation.predict("x", rgb_image), rtol=1e-3, atol=5e-4)
    np.testing.assert_allclose(combined, average_normalised([primedepth, other]), atol=1e-6)
    # the members are the models' own maps
    np.testing.assert_allclose(other, DepthAnything(tiny_depth_anything).predict(rgb_image), atol=1e-6)
    assert not np.allclose(normalise_affine_invariant(primedepth), normalise_affine_invariant(other), atol=0.1)


def test_pipeline_ensemble_metadata(tiny_pipe, tiny_depth_anything, rgb_image):
    out = tiny_pipe(rgb_image, caption="none", ensemble=f"depth-anything-v2-small={tiny_depth_anything}")
    info = out.metadata["ensemble"]
    assert info["members"] == {"primedepth": "this pipeline", "depth-anything-v2-small": str(tiny_depth_anything)}
    assert "median" in info["normalisation"] and "mean" in info["combination"]
    np.testing.assert_allclose(
        out.inverse_depth[0], average_normalised([m[0] for m in out.members.values()]), atol=1e-6
    )


def test_missing_depth_anything_weights_are_one_fast_error(tmp_path, rgb_image, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    start = time.monotonic()
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(tmp_path / "x.png"),
            "-o",
            str(tmp_path / "o"),
            "--model",
            "tiny-random",
            "--caption",
            "none",
            "--ensemble",
            "depth-anything-v2-base",
            "--cache-dir",
            str(tmp_path / "hf"),
        ],
    )
    assert time.monotonic() - start < 10
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "depth-anything-v2-base weights not found" in errors[0]
    assert "HF_HUB_OFFLINE" in errors[0] and not (tmp_path / "o" / "x.npy").exists()
    with pytest.raises(WeightsNotFoundError, match="no-such-folder"):
        DepthAnything(tmp_path / "no-such-folder")
