"""Tiled high-resolution inference: the blend is a partition of unity, alignment removes each tile's affine
ambiguity, seams vanish, and a 24-megapixel input stays within a stated memory bound."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from primedepth.pipelines.pipeline import PrimeDepthPipeline
from primedepth.pipelines.tiling import (
    AUTO_TILES,
    TileLayout,
    gaussian_lowpass,
    resolve_tiles,
    tiled_inverse_depth,
)


@pytest.mark.parametrize(
    "size,tile,tiles,overlap",
    [((256, 256), 64, 5, 0.25), ((300, 517), 64, 4, 0.5), ((1000, 400), 128, 3, 0.25), ((90, 700), 64, 6, 0.1)],
)
def test_weights_sum_to_one_and_cover_every_pixel(size, tile, tiles, overlap):
    layout = TileLayout.build(size, tile, tiles, overlap)
    total = torch.zeros(layout.size, dtype=torch.float64)
    count = torch.zeros(layout.size)
    h, w = layout.tile
    for (top, left), weight in zip(layout.boxes(), layout.weights()):
        assert top + h <= layout.size[0] and left + w <= layout.size[1]
        assert weight.shape == (h, w) and float(weight.min()) > 0
        total[top : top + h, left : left + w] += weight.double()
        count[top : top + h, left : left + w] += 1
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-6)
    assert float(count.min()) >= 1
    assert max(layout.size) <= max(size) and all(s % 8 == 0 for s in layout.size)
    assert abs(layout.size[0] / layout.size[1] - size[0] / size[1]) < 0.05 * size[0] / size[1] + 8 / min(layout.size)


def test_layout_counts_and_never_exceeds_the_input():
    layout = TileLayout.build((4000, 6000), 1024, 3, overlap=0.25)
    assert layout.grid == (2, 3) and layout.size == (1704, 2560) and layout.tile == (1024, 1024)
    small = TileLayout.build((100, 150), 64, 9, overlap=0.25)  # cannot hold 9 tiles: the input's own size
    assert small.size[1] == 144 and small.grid[1] == 3


def test_resolve_tiles():
    assert resolve_tiles("off", (4000, 6000), 1024) == 0
    assert resolve_tiles("auto", (4000, 6000), 1024) == AUTO_TILES
    assert resolve_tiles("auto", (2000, 3000), 1024) == 0  # under 4x the processing size
    assert resolve_tiles(4, (2000, 3000), 1024) == 4
    assert resolve_tiles(4, (600, 800), 1024) == 0  # the processing size already holds the whole image
    with pytest.raises(ValueError, match="tiles must be"):
        resolve_tiles("many", (10, 10), 64)


def _scene(h=256, w=256):
    """A smooth disparity with a sharp step (an occluding edge) and a small square (detail the prior lacks)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    disparity = 1.0 + 0.5 * x / w + 0.3 * y / h
    disparity[:, w // 2 + 7 :] += 0.8
    disparity[40:52, 60:72] += 1.5
    return torch.from_numpy(disparity)


def _fake_model(truth_working, layout, affine):
    """A model whose tile prediction is the true disparity of the tile under tile ``k``'s own ``affine[k]``."""
    boxes, (h, w) = layout.boxes(), layout.tile

    def predict(crops, first):
        out = []
        for k in range(len(crops)):
            top, left = boxes[first + k]
            scale, shift = affine[first + k]
            out.append(truth_working[top : top + h, left : left + w] * scale + shift)
        return torch.stack(out)

    return predict


def _run(truth, prior_small, tiles, affine, use_prior=True, batch_size=3):
    from primedepth.pipelines.image_processor import resize

    layout = TileLayout.build(tuple(truth.shape), 64, tiles)
    truth_working = resize(truth, layout.size)
    pixels = torch.zeros(3, *truth.shape)
    return tiled_inverse_depth(
        pixels,
        prior_small,
        _fake_model(truth_working, layout, affine),
        tile=64,
        tiles=tiles,
        batch_size=batch_size,
        use_prior=use_prior,
    )


def test_constant_disparity_stays_constant():
    truth = torch.full((256, 320), 2.5)
    out, info = _run(truth, torch.full((64, 80), 2.5), 5, [(1.0, 0.0)] * 30)
    assert info["tiles"] == 20 and out.dtype == np.float32 and out.shape == (256, 320)
    np.testing.assert_allclose(out, 2.5, rtol=0, atol=1e-5)


@pytest.mark.parametrize("use_prior", [True, False])
def test_each_tiles_affine_offset_is_removed(use_prior):
    """Tiles off by their own scale and shift (what an affine-invariant model gives) come back onto the truth: with
    the prior via the fit to it, without it via the chain over the overlaps (the first tile sets the frame)."""
    from primedepth.pipelines.image_processor import resize

    truth = _scene()
    rng = np.random.default_rng(0)
    affine = [(float(rng.uniform(0.3, 3.0)), float(rng.uniform(-2, 2))) for _ in range(25)]
    if not use_prior:
        affine[0] = (1.0, 0.0)
    prior = resize(truth, (64, 64))
    out, _ = _run(truth, prior, 5, affine, use_prior=use_prior)
    reference, _ = _run(truth, prior, 5, [(1.0, 0.0)] * 25, use_prior=use_prior)
    # against the same blend of unshifted tiles (the working-size resampling is common to both)
    np.testing.assert_allclose(out, reference, rtol=0, atol=2e-3)
    error = np.abs(out - truth.numpy()).mean()  # and both are close to the truth itself
    assert error < 0.05, error


def _seam_jump(depth: np.ndarray, column: int) -> float:
    """Largest step across ``column`` beyond the steps next to it (a seam is a step where the data have none)."""
    steps = np.abs(np.diff(depth, axis=1))
    return float(steps[:, column - 1 : column + 1].max() - np.median(steps))


def test_seams_of_two_tiles_vanish():
    """Two tiles that disagree (one has a spurious tilt: not an affine error) leave no step where they meet: the
    cosine blend spreads the disagreement over the overlap and the prior's low frequencies replace it."""
    from primedepth.pipelines.image_processor import resize

    h, w = 64, 112  # two 64-px tiles overlapping by 16 px
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    truth = torch.from_numpy(1.0 + x / w + 0.2 * np.sin(y / 3))
    layout = TileLayout.build((h, w), 64, 2, overlap=0.25)
    assert layout.grid == (1, 2) and layout.size == (h, w)
    boxes = layout.boxes()

    def model(crops, first):
        out = []
        for k in range(len(crops)):
            top, left = boxes[first + k]
            tile = truth[top : top + 64, left : left + 64].clone()
            if first + k == 1:
                tile += torch.linspace(-0.3, 0.3, 64)[None, :]  # a tilt the other tile does not have
            out.append(tile)
        return torch.stack(out)

    hard = np.concatenate([model(torch.zeros(1), 0)[0][:, :56], model(torch.zeros(1), 1)[0][:, 8:]], axis=1)
    assert _seam_jump(hard, 56) > 0.15  # cut-and-paste: a visible step
    prior = resize(truth, (h // 2, w // 2))
    blended, _ = tiled_inverse_depth(torch.zeros(3, h, w), prior, model, tile=64, tiles=2, batch_size=2, overlap=0.25)
    steps = np.abs(np.diff(blended, axis=1))
    truth_steps = np.abs(np.diff(truth.numpy(), axis=1))
    assert float(np.max(np.abs(steps - truth_steps))) < 0.02  # nowhere a step the data do not have


def test_gaussian_lowpass_keeps_constants_and_smooths():
    flat = torch.full((7, 300), 3.0)
    torch.testing.assert_close(gaussian_lowpass(flat, 4.0), flat)
    noise = torch.randn(100, 100, generator=torch.Generator().manual_seed(0))
    assert float(gaussian_lowpass(noise, 2.0).std()) < 0.3 * float(noise.std())


def test_pipeline_tiles_metadata_and_off_unchanged():
    pipe = PrimeDepthPipeline.tiny_random()
    image = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    plain = pipe(image, noise="none", max_size=64)
    off = pipe(image, noise="none", max_size=64, tiles="off")
    np.testing.assert_array_equal(plain.inverse_depth[0], off.inverse_depth[0])
    assert "tiling" not in off.metadata
    tiled = pipe(image, noise="none", max_size=64, tiles=3, batch_size=4)
    (info,) = tiled.metadata["tiling"]
    assert info["tiles"] == len(TileLayout.build((200, 300), 64, 3)) and info["seconds"] > 0
    assert tiled.inverse_depth[0].shape == (200, 300) and np.isfinite(tiled.inverse_depth[0]).all()
    wide = np.random.default_rng(1).integers(0, 256, (256, 512, 3), dtype=np.uint8)  # processed at 64 x 128
    auto = pipe([wide, image], noise="none", max_size=64, tiles="auto")
    assert auto.metadata["tiling"][0]["tiles"] > 1 and auto.metadata["tiling"][1] is None  # 512 >= 4 x 128; 300 not


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource
    import torch
    from primedepth.pipelines.image_processor import LoadedImage
    from primedepth.pipelines.pipeline import PrimeDepthPipeline
    torch.set_num_threads(1)
    pipe = PrimeDepthPipeline.tiny_random()
    pixels = torch.zeros(3, 4000, 6000)
    pixels[:, :, 3000:] = 0.8
    image = LoadedImage(pixels, "6000x4000")
    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    untiled = pipe(image, noise="none", max_size=64).inverse_depth[0]
    after_untiled = peak()
    del untiled
    out = pipe(image, noise="none", max_size=64, tiles=6, batch_size=4)
    assert out.inverse_depth[0].shape == (4000, 6000)
    print(json.dumps({"untiled": after_untiled, "tiled": peak(), "tiling": out.metadata["tiling"][0]}))
    """
)


def test_memory_of_a_24_megapixel_input_is_bounded():
    """6000 x 4000 input, 64-px processing (96-px tiles), 6 tiles along the long side: tiling raises the peak RSS
    of the process by less than 3/4 of one full-size float32 map (72 MB; measured: 0.4, torch's upsampling of the
    larger working map) over that of the untiled prediction of the same image (the peak only grows, so the second
    reading is the larger of both) -- no full-size map beyond the output, which both make."""
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, check=True, timeout=600
    )
    peaks = json.loads(result.stdout.strip().splitlines()[-1])
    assert peaks["tiling"]["tiles"] == len(TileLayout.build((4000, 6000), 96, 6))
    full_map = 4000 * 6000 * 4
    assert peaks["tiled"] - peaks["untiled"] < 0.75 * full_map, (peaks["tiled"] - peaks["untiled"]) / full_map


def test_predict_tiles_option(tmp_path):
    """``--tiles auto`` (the default) tiles a large input and says so once; ``off`` gives the plain prediction; a
    bad value is a usage error."""
    from click.testing import CliRunner
    from PIL import Image

    from primedepth.cli import main

    y, x = np.mgrid[0:256, 0:512]
    image = (np.stack([x, y, x + y], axis=-1) % 256).astype(np.uint8)
    for name in ("a", "b"):
        Image.fromarray(image).save(tmp_path / f"{name}.png")
    base = ["predict", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--model", "tiny-random"]
    base += ["--max-size", "64", "--noise", "none", "--format", "npy"]
    auto = CliRunner().invoke(main, [*base, "-o", str(tmp_path / "auto")])
    assert auto.exit_code == 0, auto.output
    assert auto.output.count("tiles: inputs of at least 4x the processing size") == 1, auto.output
    off = CliRunner().invoke(main, [*base, "-o", str(tmp_path / "off"), "--tiles", "off"])
    assert off.exit_code == 0 and "tiles:" not in off.output, off.output
    tiled, plain = np.load(tmp_path / "auto" / "a.npy"), np.load(tmp_path / "off" / "a.npy")
    assert tiled.shape == plain.shape == (256, 512) and not np.array_equal(tiled, plain)
    bad = CliRunner().invoke(main, [*base, "-o", str(tmp_path / "bad"), "--tiles", "many"])
    assert bad.exit_code == 2 and "expected auto, off or a number of tiles" in bad.output
