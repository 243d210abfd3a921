"""Pipeline behaviour on the tiny random model: sizes, seeds, batching, dtypes, attention modes, persistence."""

import numpy as np
import pytest
import torch
from PIL import Image

from primedepth import PrimeDepthPipeline
from primedepth.pipelines.image_processor import aligned_processing_size, official_processing_size


def test_output_is_at_input_size_and_native_mode_reproduces_official_sizes(tiny_pipe, rgb_image):
    out = tiny_pipe(rgb_image)
    assert out.inverse_depth[0].shape == (75, 93) and out.inverse_depth[0].dtype == np.float32
    assert "inverse depth" in out.metadata["values"]
    native = tiny_pipe(rgb_image, match_input_size=False)
    assert native.inverse_depth[0].shape == (72, 88)  # the authors' 8*floor(H/8) x 8*floor(W/8)
    # Downscaled by max_size: the authors resize back to the input, so do we in both modes.
    assert tiny_pipe(rgb_image, max_size=40, match_input_size=False).inverse_depth[0].shape == (75, 93)
    assert tiny_pipe(rgb_image, max_size=80).metadata["processing_sizes"] == [(64, 80)]


def test_processing_sizes():
    assert official_processing_size(75, 93, 1024) == (75, 93)
    assert official_processing_size(2000, 1000, 1024) == (1024, 512)  # torchvision Resize(1023, max_size=1024)
    assert official_processing_size(1000, 1000, 512) == (512, 512)
    assert aligned_processing_size(75, 93, 1024) == (72, 96)
    assert aligned_processing_size(3000, 2000, 1024) == (1024, 680)
    assert aligned_processing_size(1, 1, 1024) == (64, 64)
    # a thin strip keeps its aspect ratio: short side 64, long side 300 * 64 / 20
    assert aligned_processing_size(20, 300, 1024) == (64, 960)
    # ... up to twice max_size; only inputs more elongated than that are stretched across the short side
    assert aligned_processing_size(1, 10000, 64) == (64, 128)


def test_small_processing_sizes_keep_the_aspect_ratio(tiny_pipe):
    """max_size 64 (PrimeDepth-mini's) must not squash a 480 x 640 photo to 64 x 64: its short side becomes 64 and
    its long side 64 * 4 / 3 = 85.3, rounded to the multiple of 8 nearest (88)."""
    ph, pw = aligned_processing_size(480, 640, 64)
    assert (ph, pw) == (64, 88)
    assert abs(ph / pw - 3 / 4) <= 4 / pw  # 3:4 up to the rounding of the long side to a multiple of 8
    assert aligned_processing_size(640, 480, 64) == (88, 64)
    assert aligned_processing_size(480, 640, 128) == (96, 128)  # exactly 3:4 where 8-px rounding allows
    photo = np.zeros((480, 640, 3), np.uint8)
    out = tiny_pipe(photo, max_size=64, caption="none")
    assert out.metadata["processing_sizes"] == [(64, 88)] and out.inverse_depth[0].shape == (480, 640)


def test_seeded_noise_is_reproducible_and_noise_none_ignores_the_seed(tiny_pipe, rgb_image):
    a, b = tiny_pipe(rgb_image, seed=3), tiny_pipe(rgb_image, seed=3)
    np.testing.assert_array_equal(a.inverse_depth[0], b.inverse_depth[0])
    c = tiny_pipe(rgb_image, seed=4)
    assert np.abs(a.inverse_depth[0] - c.inverse_depth[0]).max() > 1e-4
    n1, n2 = tiny_pipe(rgb_image, noise="none", seed=1), tiny_pipe(rgb_image, noise="none", seed=2)
    np.testing.assert_array_equal(n1.inverse_depth[0], n2.inverse_depth[0])


def test_batching_does_not_change_results(tiny_pipe, rgb_image):
    images = [rgb_image, rgb_image[::-1].copy(), rgb_image[:40, :50].copy()]
    one = tiny_pipe(images, batch_size=1)
    many = tiny_pipe(images, batch_size=3)
    for x, y in zip(one.inverse_depth, many.inverse_depth):
        assert np.abs(x - y).max() <= 1e-4 * np.abs(x).max()


def test_pooled_attention_matches_authors_arithmetic_end_to_end(tiny_pipe, rgb_image):
    fast = tiny_pipe(rgb_image, segmentation=True)
    naive = tiny_pipe(rgb_image, segmentation=True, attention="naive")
    scale = np.abs(naive.inverse_depth[0]).max()
    assert np.abs(fast.inverse_depth[0] - naive.inverse_depth[0]).max() / scale < 1e-4
    assert (fast.segmentation[0] == naive.segmentation[0]).mean() > 0.99


def test_bfloat16_is_close_to_float32(rgb_image):
    fp32 = PrimeDepthPipeline.from_pretrained("tiny-random", device="cpu")(rgb_image).inverse_depth[0]
    bf16_pipe = PrimeDepthPipeline.from_pretrained("tiny-random", device="cpu", torch_dtype=torch.bfloat16)
    assert bf16_pipe.dtype == torch.bfloat16
    bf16 = bf16_pipe(rgb_image).inverse_depth[0]
    assert bf16.dtype == np.float32
    corr = np.corrcoef(fp32.ravel(), bf16.ravel())[0, 1]
    rel = np.abs(fp32 - bf16).max() / np.abs(fp32).max()
    assert corr > 0.98 and rel < 0.3, (corr, rel)


def test_every_input_type_gives_the_same_prediction(tiny_pipe, rgb_image, tmp_path):
    Image.fromarray(rgb_image).save(tmp_path / "x.png")
    ref = tiny_pipe(rgb_image).inverse_depth[0]
    variants = [
        str(tmp_path / "x.png"),
        tmp_path / "x.png",
        Image.fromarray(rgb_image),
        rgb_image.astype(np.float32) / 255,
        torch.from_numpy(rgb_image).permute(2, 0, 1),
        torch.from_numpy(rgb_image).permute(2, 0, 1).float() / 255,
        rgb_image.astype(np.uint16) * 257,
    ]
    for v in variants:
        np.testing.assert_allclose(tiny_pipe(v).inverse_depth[0], ref, rtol=1e-5, atol=1e-5)


def test_save_and_load_round_trip(tiny_pipe, rgb_image, tmp_path, capfd):
    from transformers.utils import logging as transformers_logging

    bars_on = transformers_logging.is_progress_bar_enabled()
    tiny_pipe.save_pretrained(tmp_path / "model")
    again = PrimeDepthPipeline.from_pretrained(tmp_path / "model", device="cpu")
    printed = capfd.readouterr().err
    assert "Writing model shards" not in printed and "Loading weights" not in printed, printed
    assert transformers_logging.is_progress_bar_enabled() == bars_on  # switched back on after the block
    x, y = again(rgb_image).inverse_depth[0], tiny_pipe(rgb_image).inverse_depth[0]
    assert np.abs(x - y).max() <= 1e-4 * np.abs(y).max()
    assert again.tokenizer("a cat")["input_ids"] == tiny_pipe.tokenizer("a cat")["input_ids"]


def test_captions_condition_the_model_and_are_cached(tiny_pipe, rgb_image, tmp_path):
    empty = tiny_pipe(rgb_image, caption="none")
    text = tiny_pipe(rgb_image, caption="a red box on a wooden floor")
    assert text.captions == ["a red box on a wooden floor"] and empty.captions == [""]
    assert np.abs(empty.inverse_depth[0] - text.inverse_depth[0]).max() > 1e-5

    class CountingCaptioner:
        calls = 0

        def __call__(self, images):
            CountingCaptioner.calls += len(images)
            return ["a box"] * len(images)

    from primedepth.pipelines.captioning import CaptionCache

    tiny_pipe.captioner, tiny_pipe.caption_cache = CountingCaptioner(), CaptionCache(tmp_path / "captions.json")
    try:
        first = tiny_pipe([rgb_image, rgb_image], caption="auto")
        tiny_pipe(rgb_image, caption="auto")
        assert first.captions == ["a box", "a box"] and CountingCaptioner.calls == 1  # one image content
        assert CaptionCache(tmp_path / "captions.json").get(next(iter(tiny_pipe.caption_cache.entries))) == "a box"
    finally:
        tiny_pipe.captioner, tiny_pipe.caption_cache = None, CaptionCache(None)


def test_missing_weights_give_one_clear_error(tmp_path):
    from primedepth.conversion.loading import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError, match="primedepth convert"):
        PrimeDepthPipeline.from_pretrained(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError, match="no model_index.json"):
        PrimeDepthPipeline.from_pretrained(tmp_path / "empty")
    with pytest.raises(WeightsNotFoundError, match="neither a local folder nor in the caches.*local_files_only"):
        PrimeDepthPipeline.from_pretrained(
            "nobody/primedepth-missing", local_files_only=True, cache_dir=str(tmp_path / "hf")
        )


def test_block_preimage_checkpoints_load_into_the_pipeline(tiny_pipe, rgb_image, tmp_path):
    from primedepth.models.trained.block_preimage import BlockPreimageLabeller

    pipe = PrimeDepthPipeline.from_pretrained("tiny-random", device="cpu")
    pipe.labeller = BlockPreimageLabeller(
        **{k: v for k, v in tiny_pipe.labeller.config.items() if not k.startswith("_")}
    ).eval()
    pipe.save_pretrained(tmp_path / "block")
    loaded = PrimeDepthPipeline.from_pretrained(tmp_path / "block", device="cpu")
    assert type(loaded.labeller).__name__ == "BlockPreimageLabeller"
    x, y = loaded(rgb_image).inverse_depth[0], pipe(rgb_image).inverse_depth[0]
    assert x.shape == (75, 93) and np.abs(x - y).max() <= 1e-4 * np.abs(y).max()
