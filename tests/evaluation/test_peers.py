import numpy as np
import pytest

from primedepth.evaluation import DATASETS, DepthAnythingV2Predictor, MarigoldPredictor, WeightsNotFoundError, evaluate

from . import fixtures


@pytest.fixture(scope="module")
def tiny_depth_anything(tmp_path_factory):
    """A random-weight Depth Anything (DINOv2 backbone + DPT head) saved like a hub checkpoint."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(image_size=28, patch_size=14, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=32, out_features=["stage1", "stage2"], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, patch_size=14, neck_hidden_sizes=[8, 16],
                                 fusion_hidden_size=8, head_hidden_size=4, reassemble_factors=[2, 1])
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("depth-anything-v2")
    DepthAnythingForDepthEstimation(config).save_pretrained(path)
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14).save_pretrained(path)
    return path


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
