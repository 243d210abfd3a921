import numpy as np
import pytest

from primedepth.evaluation import DATASETS, DepthAnythingV2Predictor, MarigoldPredictor, WeightsNotFoundError, evaluate

from . import fixtures


def test_depth_anything_adapter_runs_through_the_harness(tiny_depth_anything, tmp_path):
    model = DepthAnythingV2Predictor(tiny_depth_anything, device="cpu")
    assert (model.name, model.space) == ("depth-anything-v2", "disparity")
    pred = model.predict("x", np.zeros((30, 50, 3), np.uint8))
    assert pred.shape == (30, 50) and pred.dtype == np.float32
    fixtures.make_scannet(tmp_path / "data")
    summary = evaluate(DATASETS["scannet"](tmp_path / "data", allow_partial=True), model, tmp_path / "out")
    assert summary["samples"] == 2 and 0 <= summary["metrics"]["delta1"] <= 1


@pytest.mark.parametrize("make", [lambda p: DepthAnythingV2Predictor(p), lambda p: MarigoldPredictor(p)])
def test_absent_weights_give_one_clear_error(make, tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"weights not found at .*missing.*huggingface-cli download"):
        make(tmp_path / "missing")


def test_marigold_settings_are_the_protocols():
    from primedepth.evaluation.predictors import MARIGOLD_SETTINGS

    assert MARIGOLD_SETTINGS["v1-0"] == {"num_inference_steps": 50, "ensemble_size": 10}
    assert MARIGOLD_SETTINGS["1-step"] == {"num_inference_steps": 1, "ensemble_size": 1}
    with pytest.raises(ValueError, match="setting"):
        MarigoldPredictor("unused", setting="2-step")
