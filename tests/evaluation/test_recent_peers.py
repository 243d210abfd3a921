"""The recent peers, each on a tiny random checkpoint saved in its library's own format."""

import numpy as np
import pytest
import torch
from helpers import benchmark_files, tiny_peers
from PIL import Image

from primedepth.evaluation import DATASETS, WeightsNotFoundError, evaluate
from primedepth.evaluation.peers import (
    MARIGOLD_FORMATS,
    PEERS,
    DepthAnythingV1Predictor,
    DepthProPredictor,
    MarigoldPredictor,
)

RGB = np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("peers")
    return {
        "depth-anything": tiny_peers.save_tiny_depth_anything(root / "da"),
        "depth-pro": tiny_peers.save_tiny_depth_pro(root / "dp"),
        "marigold-v1-1": tiny_peers.save_tiny_marigold(root / "mg", default_steps=2),
        "marigold-lcm": tiny_peers.save_tiny_marigold(root / "lcm", scheduler="lcm", default_steps=3),
    }


def count_unet_calls(pipe):
    calls = []
    pipe.unet.register_forward_hook(lambda module, args, out: calls.append(args[1]))  # the timestep
    return calls


def test_each_adapter_states_its_output_kind_and_alignment_space():
    assert (DepthAnythingV1Predictor.output_kind, DepthAnythingV1Predictor.space) == ("inverse depth", "disparity")
    assert (DepthProPredictor.output_kind, DepthProPredictor.space) == ("inverse depth", "disparity")
    assert (MarigoldPredictor.output_kind, MarigoldPredictor.space) == ("depth", "depth")
    assert set(PEERS) == {"depth-anything", "depth-pro", "marigold-v1-1", "marigold-lcm", "marigold-e2e-ft"}
    assert MARIGOLD_FORMATS["marigold-e2e-ft"].hub_id == "GonzaloMG/marigold-e2e-ft-depth"


def test_depth_anything_v1_is_the_library_model_upsampled(checkpoints):
    from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

    model = PEERS["depth-anything"](checkpoints["depth-anything"], device="cpu")
    assert isinstance(model.model, DepthAnythingForDepthEstimation)
    pred = model.predict("x", RGB)
    inputs = AutoImageProcessor.from_pretrained(checkpoints["depth-anything"])(images=RGB, return_tensors="pt")
    with torch.no_grad():
        raw = model.model(**inputs).predicted_depth[:, None]
    expected = torch.nn.functional.interpolate(raw, size=(30, 50), mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(pred, expected, rtol=1e-6, atol=1e-12)
    assert pred.shape == (30, 50) and np.ptp(pred) > 0


def test_depth_pro_uses_the_relative_output_as_inverse_depth(checkpoints):
    from transformers import DepthProForDepthEstimation

    model = PEERS["depth-pro"](checkpoints["depth-pro"], device="cpu")
    assert isinstance(model.model, DepthProForDepthEstimation) and model.model.fov_model is None  # FoV head not run
    # The processor's input: rescale to [0, 1], normalise with mean = std = 0.5, resize to the saved 32 x 32.
    white, black = (model.pixel_values(np.full((30, 50, 3), v, np.uint8)) for v in (255, 0))
    assert (
        white.shape == (1, 3, 32, 32) and torch.allclose(white, torch.ones(1)) and torch.allclose(black, -torch.ones(1))
    )
    pred = model.predict("x", RGB)
    with torch.no_grad():
        raw = model.model(pixel_values=model.pixel_values(RGB)).predicted_depth
    expected = torch.nn.functional.interpolate(raw[:, None], size=(30, 50), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(pred, expected.numpy(), rtol=1e-6)
    assert np.ptp(pred) > 0


@pytest.mark.parametrize(
    "kind, scheduler, steps", [("marigold-v1-1", "DDIMScheduler", 2), ("marigold-lcm", "LCMScheduler", 3)]
)
def test_marigold_v1_1_and_lcm_run_with_their_scheduler_and_default_steps(checkpoints, kind, scheduler, steps):
    model = PEERS[kind](checkpoints[kind], device="cpu", seed=0)
    assert type(model.pipe.scheduler).__name__ == scheduler
    calls = count_unet_calls(model.pipe)
    pred = model.predict("a", RGB)
    assert len(calls) == steps and pred.shape == (30, 50) and 0 <= pred.min() < pred.max() <= 1
    assert np.array_equal(pred, model.predict("a", RGB))  # seeded per sample: reproducible
    assert not np.array_equal(pred, model.predict("b", RGB))  # ... and a different noise for another sample


def test_e2e_ft_is_one_step_from_a_zero_latent(checkpoints):
    path = checkpoints["marigold-v1-1"]
    model = PEERS["marigold-e2e-ft"](path, device="cpu", seed=0)
    calls = count_unet_calls(model.pipe)
    pred = model.predict("a", RGB)
    assert len(calls) == 1 and int(calls[0]) == 999  # one step at the trailing timestep t = T
    assert np.array_equal(
        pred, PEERS["marigold-e2e-ft"](path, device="cpu", seed=7).predict("b", RGB)
    )  # no noise at all
    direct = model.pipe(
        Image.fromarray(RGB),
        num_inference_steps=1,
        latents=torch.zeros(1, 4, 10, 16),
        processing_resolution=32,
        output_type="np",
    )
    np.testing.assert_allclose(pred, direct.prediction.reshape(30, 50), atol=1e-6)


def test_peers_run_through_the_harness(checkpoints, tmp_path):
    benchmark_files.make_scannet(tmp_path / "data")
    dataset = DATASETS["scannet"](tmp_path / "data", allow_partial=True)
    for kind in ("depth-pro", "marigold-lcm"):
        summary = evaluate(dataset, PEERS[kind](checkpoints[kind], device="cpu"), tmp_path / "out")
        assert summary["model"] == kind and summary["samples"] == 2 and 0 <= summary["metrics"]["delta1"] <= 1
        assert summary["alignment"] == PEERS[kind](checkpoints[kind], device="cpu").space


@pytest.mark.parametrize("kind", sorted(PEERS))
def test_absent_weights_name_the_hub_download(kind, tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"weights not found at .*missing.*huggingface-cli download \S+/\S+"):
        PEERS[kind](tmp_path / "missing")
