"""The one float-RGB -> uint8 conversion: values, channel order, and the caption cache keys it feeds unchanged."""

import hashlib

import numpy as np
import torch

from primedepth.pipelines.image_processor import load_image
from primedepth.utils.images import uint8_rgb


def test_values_and_channel_order():
    pixels = torch.zeros(3, 2, 4)
    pixels[0, 0, :] = torch.tensor([0.0, 1.0, 100.4 / 255, 100.6 / 255])
    pixels[2, 1, 3] = 1.0
    rgb = uint8_rgb(pixels)
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert rgb[0, :, 0].tolist() == [0, 255, 100, 101]
    assert rgb[1, 3].tolist() == [0, 0, 255] and int(rgb.sum()) == 255 + 100 + 101 + 255


def test_a_loaded_image_round_trips_and_keeps_its_cache_key():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = load_image(rgb)
    np.testing.assert_array_equal(image.rgb(), rgb)
    # the caption cache key as it was computed before: channels first, rounded bytes, then the size
    data = (image.pixels * 255).round().to(torch.uint8).numpy().tobytes()
    assert image.content_hash() == hashlib.sha256(data + str(image.size).encode()).hexdigest()
