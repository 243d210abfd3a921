"""``pipe.preimage``: the frozen half of the step as a public API, the same numbers the pipeline feeds its labeller."""

import torch

from primedepth.models.frozen.single_step import draw_noise
from primedepth.pipelines.image_processor import PrimeDepthImageProcessor, load_image


def test_preimage_feeds_the_labeller_exactly_as_the_pipeline(tiny_pipe, rgb_image):
    other = rgb_image[::-1].copy()
    pre = tiny_pipe.preimage([other, rgb_image], caption="none", seed=3)
    assert len(pre) == 2 and len(pre[0].features) == len(tiny_pipe.unet.up_blocks) * 3
    assert pre[0].mid_maps.self_maps is not None and pre[0].mid_maps.cross_maps is not None
    # every image's noise comes from the seed alone: the second image's preimage is the one it has alone
    alone = tiny_pipe.preimage(rgb_image, caption="none", seed=3)[0]
    torch.testing.assert_close(pre[1].features[-1], alone.features[-1], rtol=0, atol=0)
    assert not torch.equal(pre[0].features[-1], pre[1].features[-1])
    pixels = PrimeDepthImageProcessor(max_size=1024).preprocess(load_image(rgb_image))[None]
    context = tiny_pipe._encode_prompts([""])
    expected = tiny_pipe.predict_tensor(pixels, context, generator=[torch.Generator().manual_seed(3)]).depth
    torch.testing.assert_close(tiny_pipe.labeller(pre[1]).depth, expected, rtol=0, atol=0)


def test_noise_draws_do_not_depend_on_the_batch():
    shape = (4, 5, 6)
    alone = draw_noise(shape, [torch.Generator().manual_seed(9)])
    batched = draw_noise(shape, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(9)])
    torch.testing.assert_close(batched[0][1], alone[0][0], rtol=0, atol=0)
    torch.testing.assert_close(batched[1][1], alone[1][0], rtol=0, atol=0)
    assert not torch.equal(alone[0][0], alone[1][0])  # posterior and t-noise are two different draws
