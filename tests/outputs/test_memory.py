"""Memory of large images: writers and post-processing work in float32 with no full-size float64 or duplicate
copies (peaks of numpy buffers measured with tracemalloc, which does not see torch's), and an image
that cannot fit in the memory available is refused with a message before it is decoded."""

import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

import primedepth.pipelines.image_processor as image_processor
from primedepth.outputs.writers import min_max_normalise, png16_bytes, write_prediction
from primedepth.pipelines.image_processor import (
    ImageLoadError,
    PrimeDepthImageProcessor,
    load_image,
)


def _peak(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_writers_stay_within_two_and_a_half_maps(tmp_path):
    depth = np.random.default_rng(0).random((1500, 1500), dtype=np.float32)
    peak = _peak(lambda: write_prediction(tmp_path / "x", ["npy", "png16"], depth))
    # float32 normalised map (1) + uint16 image (0.5) + its PNG (< 0.5 here): before, 3 maps and more
    assert peak <= 2.5 * depth.nbytes, peak / depth.nbytes
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), depth)


def test_normalise_and_png16_are_float32_and_exact():
    values = np.array([[2.0, 4.0], [3.0, 6.0]], dtype=np.float64)
    out = min_max_normalise(values)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[0, 0.5], [0.25, 1]], dtype=np.float32))
    assert min_max_normalise(np.full((2, 2), 7.0, np.float32)).tolist() == [[0, 0], [0, 0]]
    import io

    png = np.asarray(Image.open(io.BytesIO(png16_bytes(values))))
    assert png.tolist() == [[0, 32768], [16384, 65535]]


def test_postprocessing_makes_one_full_size_float32_map():
    processor = PrimeDepthImageProcessor(max_size=64)
    small = torch.rand(48, 64)
    out = {}
    peak = _peak(lambda: out.setdefault("depth", processor.postprocess_depth(small, (1200, 1600))))
    assert out["depth"].dtype == np.float32 and out["depth"].shape == (1200, 1600)
    assert peak <= 0.1 * out["depth"].nbytes, peak / out["depth"].nbytes  # the resized tensor itself, no copy


def test_an_image_that_cannot_fit_is_refused_before_decoding(tmp_path, monkeypatch):
    Image.new("RGB", (4000, 3000), (90, 120, 150)).save(tmp_path / "big.png")
    monkeypatch.setattr(image_processor, "available_memory", lambda: 200 * 2**20)
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1))
    with pytest.raises(
        ImageLoadError,
        match=r"big\.png: a 4000 x 3000 image needs about 1\.4 GiB of memory to "
        r"predict, only 0\.2 GiB are available",
    ):
        load_image(tmp_path / "big.png")
    assert not decoded


def test_decoding_converts_in_place(tmp_path):
    """uint8 decode -> float32 (3, H, W) converted in torch: numpy holds only the decoded bytes (a quarter of the
    float image, read through one buffer copy), no float temporaries."""
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (800, 1000, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    out = {}
    peak = _peak(lambda: out.setdefault("img", load_image(tmp_path / "a.png")))
    pixels = out["img"].pixels
    assert pixels.dtype == torch.float32 and tuple(pixels.shape) == (3, 800, 1000)
    assert peak <= 0.6 * pixels.numel() * 4, peak / (pixels.numel() * 4)
    np.testing.assert_allclose(
        pixels.permute(1, 2, 0).numpy() * 255, np.asarray(Image.open(tmp_path / "a.png")), atol=1e-3
    )
