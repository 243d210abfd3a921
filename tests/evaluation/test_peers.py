import numpy as np
import pytest
from helpers import benchmark_files

from primedepth.evaluation import DATASETS, DepthAnythingV2Predictor, MarigoldPredictor, WeightsNotFoundError, evaluate


def test_depth_anything_adapter_runs_through_the_harness(tiny_depth_anything, tmp_path):
    model = DepthAnythingV2Predictor(tiny_depth_anything, device="cpu")
    assert (model.name, model.space) == ("depth-anything-v2", "disparity")
    pred = model.predict("x", np.zeros((30, 50, 3), np.uint8))
    assert pred.shape == (30, 50) and pred.dtype == np.float32
    benchmark_files.make_scannet(tmp_path / "data")
    summary = evaluate(DATASETS["scannet"](tmp_path / "data", allow_partial=True), model, tmp_path / "out")
    assert summary["samples"] == 2 and 0 <= summary["metrics"]["delta1"] <= 1


@pytest.mark.parametrize("make", [lambda p: DepthAnythingV2Predictor(p), lambda p: MarigoldPredictor(p)])
def test_absent_weights_give_one_clear_error(make, tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"weights not found at .*missing.*huggingface-cli download"):
        make(tmp_path / "missing")


def test_marigold_settings_are_the_protocols():
    from primedepth.evaluation.peers import MARIGOLD_FORMATS

    v1_0, one_step = MARIGOLD_FORMATS["marigold-v1-0"], MARIGOLD_FORMATS["marigold-1-step"]
    assert (v1_0.steps, v1_0.ensemble_size, v1_0.processing_resolution) == (50, 10, 768)
    assert (one_step.steps, one_step.ensemble_size, one_step.processing_resolution) == (1, 1, 768)
    assert v1_0.hub_id == one_step.hub_id == "prs-eth/marigold-depth-v1-0" and not v1_0.zero_noise
    with pytest.raises(ValueError, match="kind must be one of"):
        MarigoldPredictor("unused", "marigold-2-step")


@pytest.mark.slow  # 150 denoising steps of the tiny UNet: over 10 s on the 2-core machine under load
def test_marigold_v1_0_ensembles_its_members(tmp_path):
    """The v1-0 protocol averages an ensemble (diffusers aligns the members with scipy, a dependency for that)."""
    from helpers import tiny_peers

    path = tiny_peers.save_tiny_marigold(tmp_path / "mg")
    rgb = (np.mgrid[0:24, 0:40, 0:3].sum(0) * 9 % 256).astype(np.uint8)
    pair = MarigoldPredictor(path, "marigold-v1-0", device="cpu", ensemble_size=2, processing_resolution=32)
    single = MarigoldPredictor(path, "marigold-v1-0", device="cpu", ensemble_size=1, processing_resolution=32)
    ensembled, alone = pair.predict("a", rgb), single.predict("a", rgb)
    assert ensembled.shape == alone.shape == (24, 40) and np.isfinite(ensembled).all()
    assert not np.allclose(ensembled, alone)  # a second member, drawn from the same seed's stream, moved the result
