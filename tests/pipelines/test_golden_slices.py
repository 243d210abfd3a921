"""Expected slices of the tiny-random model (seed 0 weights, ``rgb_image``, caption "none", noise seed 0).

The numbers were recorded from this implementation after it had reproduced the official reference vectors
(``test_reference_equivalence.py``); they pin every stage a refactoring could move without the reference noticing:
one attention map of the preimage, one fused input of the refiner, a corner of the depth head's output and of the
user-facing inverse depth at the input size.
"""

import torch

RTOL, ATOL = 1e-4, 1e-6

ENCODER_BLOCK_4_SELF_MAPS = [0.3448830544948578, 0.3747916519641876, 0.41468942165374756]  # [0, :3, 0, 0]
ENCODER_BLOCK_4_CROSS_MAPS = [0.041917309165000916, 0.025209642946720123, 0.02512156218290329]
FUSED_INPUT_7 = [-0.1675560623407364, -0.003202613443136215, 0.06922704726457596]  # merged[7][0, :3, 0, 0]
DEPTH_HEAD_CORNER = [  # depth[0, 0, :3, :3] at the processing size 72 x 96
    [-0.1507900357246399, -0.21237656474113464, -0.1715535819530487],
    [-0.19768059253692627, -0.31190311908721924, -0.2598121762275696],
    [-0.2018311321735382, -0.40029823780059814, -0.31264424324035645],
]
SEGMENTATION_LOGITS = [-0.08483752608299255, 0.22406043112277985, 0.007179319858551025]  # [0, :3, 0, 0]
INVERSE_DEPTH_CORNER = [  # inverse_depth[0][:2, :3] at the input size 75 x 93
    [-0.06783871352672577, -0.11330288648605347, -0.08178874105215073],
    [-0.09907452017068863, -0.1803649663925171, -0.15316666662693024],
]


def close(actual: torch.Tensor, expected) -> None:
    torch.testing.assert_close(actual.float(), torch.tensor(expected, dtype=torch.float32), rtol=RTOL, atol=ATOL)


def test_tiny_random_slices(tiny_pipe, rgb_image, one_thread):
    preimage = tiny_pipe.preimage(rgb_image, caption="none", seed=0)[0]
    maps = preimage.encoder_maps[4]
    assert maps.self_maps.shape == (1, 128, 5, 6) and maps.cross_maps.shape == (1, 154, 5, 6)
    close(maps.self_maps[0, :3, 0, 0], ENCODER_BLOCK_4_SELF_MAPS)
    close(maps.cross_maps[0, :3, 0, 0], ENCODER_BLOCK_4_CROSS_MAPS)

    out = tiny_pipe.labeller(preimage, segmentation=True, return_intermediates=True)
    assert out.merged[7].shape == (1, 205, 5, 6)
    close(out.merged[7][0, :3, 0, 0], FUSED_INPUT_7)
    assert out.depth.shape == (1, 3, 72, 96)
    close(out.depth[0, 0, :3, :3], DEPTH_HEAD_CORNER)
    close(out.segmentation[0, :3, 0, 0], SEGMENTATION_LOGITS)

    result = tiny_pipe(rgb_image, caption="none", seed=0)
    assert result.inverse_depth[0].shape == (75, 93)
    close(torch.from_numpy(result.inverse_depth[0][:2, :3]), INVERSE_DEPTH_CORNER)
