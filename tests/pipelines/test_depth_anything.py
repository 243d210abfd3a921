"""The one Depth Anything inference: every user (ensemble member, V1/V2 evaluation peers, pseudo-labels) gets the
numbers of the inference they each ran before, on a tiny random Depth Anything model."""

import numpy as np
import pytest
import torch
from PIL import Image

from primedepth.pipelines.depth_anything import DepthAnything, predict_inverse_depth, upsample


def test_upsample_is_bilinear_without_corner_alignment():
    values = upsample(torch.tensor([[0.0, 1.0], [2.0, 3.0]]), (4, 4))
    # half-pixel centres: output x = (i + 0.5) / 2 - 0.5 -> -0.25, 0.25, 0.75, 1.25, clamped at the edges
    np.testing.assert_allclose(values[0], [0.0, 0.25, 0.75, 1.0], atol=1e-7)
    np.testing.assert_allclose(values[:, 0], [0.0, 0.5, 1.5, 2.0], atol=1e-7)
    assert values.dtype == np.float32


def _by_hand(folder, rgb, size):
    """The inference as the ensemble member and the evaluation peers each wrote it out."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    processor = AutoImageProcessor.from_pretrained(folder)
    model = AutoModelForDepthEstimation.from_pretrained(folder).eval()
    with torch.no_grad():
        raw = model(**processor(images=rgb, return_tensors="pt")).predicted_depth[:, None].float()
    return torch.nn.functional.interpolate(raw, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


@pytest.mark.parametrize("size", [None, (20, 36)])
def test_every_user_gets_the_same_numbers(tiny_depth_anything, rgb_image, size):
    from primedepth.evaluation.peers import DepthAnythingV1Predictor
    from primedepth.evaluation.predictors import DepthAnythingV2Predictor

    expected = _by_hand(tiny_depth_anything, rgb_image, size or rgb_image.shape[:2])
    assert np.ptp(expected) > 0
    member = DepthAnything(tiny_depth_anything, local_files_only=True)
    np.testing.assert_allclose(member.predict(rgb_image, size), expected, rtol=1e-6, atol=1e-7)
    if size is None:
        v2 = DepthAnythingV2Predictor(tiny_depth_anything, device="cpu").predict("x", rgb_image)
        v1 = DepthAnythingV1Predictor(tiny_depth_anything, device="cpu").predict("x", rgb_image)
        np.testing.assert_allclose(v2, expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(v1, expected, rtol=1e-6, atol=1e-7)
        # pseudo-labelling hands the function a PIL image: same pixels, same map
        pil = predict_inverse_depth(member.processor, member.model, Image.fromarray(rgb_image))
        np.testing.assert_allclose(pil, expected, rtol=1e-6, atol=1e-7)
