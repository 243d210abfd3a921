"""Official-style configs other than the reference one build, run, and keep the pooled == naive identity."""

import copy

import numpy as np
import pytest
import torch

from primedepth.pipelines.pipeline import PrimeDepthPipeline
from primedepth.pipelines.tiny_random import TINY_OFFICIAL_CONFIG


def variant(unet=None, labeller=None, vae=None):
    config = copy.deepcopy(TINY_OFFICIAL_CONFIG)
    config["unet"].update(unet or {})
    config["labeller"].update(labeller or {})
    config["vae_ddconfig"].update(vae or {})
    return config


VARIANTS = {
    "three-levels-one-resblock": variant(
        unet={"channel_mult": [1, 2, 2], "num_res_blocks": 1, "attention_resolutions": [2, 1], "num_head_channels": 16},
        labeller={"refiner_model_ratio": 0.25, "scale_input_features_with_model": False},
        vae={"ch_mult": [1, 2, 2]},
    ),
    "conv-projections-coarse-maps-no-features": variant(
        unet={"use_linear_in_transformer": False}, labeller={"n_sa_maps": 16, "n_ca_maps": 7, "use_feature_maps": False}
    ),
    "cross-maps-only-attention-at-one-level": variant(
        unet={"attention_resolutions": [4]}, labeller={"use_self_attn_maps": False, "refiner_model_ratio": 1.0}
    ),
}


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_runs_and_pooled_equals_naive(name, rgb_image):
    pipe = PrimeDepthPipeline.tiny_random(config=VARIANTS[name])
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(1, 4, 9, 11, generator=g)
    context = torch.randn(1, 77, pipe.unet.config.cross_attention_dim, generator=g)
    request = pipe.labeller.preimage_request()
    extractor = pipe.frozen.extractors[request.pop("source")]
    with torch.no_grad():
        fast = extractor(x_t, torch.tensor([1]), context, **request)
        naive = extractor(x_t, torch.tensor([1]), context, naive=True, **request)
    pairs = [
        (fast.mid_maps, naive.mid_maps),
        *zip(fast.encoder_maps, naive.encoder_maps),
        *zip(fast.decoder_maps, naive.decoder_maps),
    ]
    compared = 0
    for a, b in pairs:
        for ma, mb in ((a and a.self_maps, b and b.self_maps), (a and a.cross_maps, b and b.cross_maps)):
            if ma is not None:
                assert ma.shape == mb.shape
                assert (ma - mb).abs().max() <= 1e-5 * mb.abs().max()
                compared += 1
    assert compared > 0
    # End to end, float rounding of the maps is amplified by ~40 random-weight layers; 1e-3 still catches any
    # systematic difference (a wrong map is off by order 1).
    depth = pipe(rgb_image).inverse_depth[0]
    depth_naive = pipe(rgb_image, attention="naive").inverse_depth[0]
    assert depth.shape == (75, 93) and np.isfinite(depth).all()
    assert np.abs(depth - depth_naive).max() <= 1e-3 * np.abs(depth).max()


def test_coarse_map_settings_change_channel_counts():
    pipe = PrimeDepthPipeline.tiny_random(config=VARIANTS["conv-projections-coarse-maps-no-features"])
    steps = pipe.labeller.steps
    assert steps[0].attention_in == 3 * (16 + 7)  # middle block: 3 heads x (16 regions + 7 token groups)
    assert all(s.feature_out == 0 and s.feature_in == 0 for s in steps)
    assert pipe.labeller.refiner[3].attention.proj_in.weight.ndim == 4  # 1x1 conv projections
