"""Every kind of awkward input is either handled correctly or rejected with the file name and the reason."""

import numpy as np
import pytest
from PIL import Image

from primedepth.pipelines.image_processor import ImageLoadError, load_image


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_grayscale_rgba_palette_and_16bit_are_converted(tmp_path, rgb_image, tiny_pipe):
    rgb = Image.fromarray(rgb_image)
    gray = load_image(_save(rgb.convert("L"), tmp_path / "g.png"))
    assert gray.pixels.shape == (3, 75, 93) and np.allclose(gray.pixels[0], gray.pixels[2])
    rgba = load_image(_save(rgb.convert("RGBA"), tmp_path / "a.png"))
    np.testing.assert_allclose(rgba.pixels.numpy(), load_image(rgb).pixels.numpy())  # alpha dropped like the authors
    pal = load_image(_save(rgb.convert("P"), tmp_path / "p.png"))
    assert pal.pixels.shape == (3, 75, 93)
    sixteen = rgb_image[..., 0].astype(np.uint16) * 257
    img16 = load_image(_save(Image.fromarray(sixteen), tmp_path / "s.png"))
    np.testing.assert_allclose(img16.pixels[0].numpy(), rgb_image[..., 0] / 255.0, atol=1e-6)
    for path in ("g.png", "a.png", "p.png", "s.png"):
        assert tiny_pipe(tmp_path / path).inverse_depth[0].shape == (75, 93)


def test_exif_orientation_is_applied(tmp_path, rgb_image):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    Image.fromarray(rgb_image).save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "r.jpg").size == (93, 75)


def test_one_pixel_and_large_images(tmp_path, tiny_pipe):
    one = _save(Image.new("RGB", (1, 1), (200, 10, 10)), tmp_path / "one.png")
    assert tiny_pipe(one).inverse_depth[0].shape == (1, 1)
    with pytest.raises(ValueError, match="too small"):
        tiny_pipe(one, match_input_size=False)
    big = _save(Image.new("RGB", (4000, 3000), (90, 120, 30)), tmp_path / "big.jpg", quality=50)
    out = tiny_pipe(big, max_size=256)
    assert out.inverse_depth[0].shape == (3000, 4000) and out.metadata["processing_sizes"] == [(192, 256)]


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "not an image file"),
        (b"this is text, not an image", "not an image file"),
        ("truncated", "truncated"),
    ],
)
def test_broken_files_name_the_file_and_the_problem(tmp_path, rgb_image, content, reason):
    path = tmp_path / "broken.png"
    if content == "truncated":
        Image.fromarray(rgb_image).save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason) as err:
        load_image(path)
    assert str(path) in str(err.value)


def test_bad_arrays_and_missing_files(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageLoadError, match=r"\[0, 1\]"):
        load_image(np.full((4, 4, 3), 7.0, dtype=np.float32))
    with pytest.raises(ImageLoadError, match="NaN"):
        load_image(np.full((4, 4, 3), np.nan, dtype=np.float32))
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((4, 4, 5), dtype=np.uint8))
    with pytest.raises(ImageLoadError, match="unsupported input type"):
        load_image(12345)
