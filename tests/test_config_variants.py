"""Official-style configs other than the reference one build, run, and keep the pooled == naive identity."""

import copy

import numpy as np
import pytest

from primedepth.pipelines.tiny_random import TINY_OFFICIAL_CONFIG, build_tiny_random_pipeline


def variant(unet=None, labeller=None, vae=None):
    config = copy.deepcopy(TINY_OFFICIAL_CONFIG)
    config["unet"].update(unet or {})
    config["labeller"].update(labeller or {})
    config["vae_ddconfig"].update(vae or {})
    return config


VARIANTS = {
    "three-levels-one-resblock": variant(unet={"channel_mult": [1, 2, 2], "num_res_blocks": 1,
                                               "attention_resolutions": [2, 1], "num_head_channels": 16},
                                         labeller={"refiner_model_ratio": 0.25,
                                                   "scale_input_features_with_model": False},
                                         vae={"ch_mult": [1, 2, 2]}),
    "conv-projections-coarse-maps-no-features": variant(unet={"use_linear_in_transformer": False},
                                                        labeller={"n_sa_maps": 16, "n_ca_maps": 7,
                                                                  "use_feature_maps": False}),
    "cross-maps-only-attention-at-one-level": variant(unet={"attention_resolutions": [4]},
                                                      labeller={"use_self_attn_maps": False,
                                                                "refiner_model_ratio": 1.0}),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_runs_and_pooled_equals_naive(name, rgb_image):
    pipe = build_tiny_random_pipeline(config=VARIANTS[name])
    fast = pipe(rgb_image, segmentation=True)
    naive = pipe(rgb_image, segmentation=True, attention="naive")
    depth = fast.inverse_depth[0]
    assert depth.shape == (75, 93) and np.isfinite(depth).all()
    assert np.abs(depth - naive.inverse_depth[0]).max() <= 1e-4 * np.abs(depth).max()


def test_coarse_map_settings_change_channel_counts():
    pipe = build_tiny_random_pipeline(config=VARIANTS["conv-projections-coarse-maps-no-features"])
    steps = pipe.labeller.steps
    assert steps[0].attention_in == 3 * (16 + 7)  # middle block: 3 heads x (16 regions + 7 token groups)
    assert all(s.feature_out == 0 and s.feature_in == 0 for s in steps)
    assert pipe.labeller.refiner[3].attention.proj_in.weight.ndim == 4  # 1x1 conv projections
