"""The banded / in-place low-memory kernels equal the plain forwards (odd sizes, bands that do not divide them)."""

import pytest
import torch
from diffusers.models.resnet import ResnetBlock2D

from primedepth.models.banded import diffusers_resnet_banded
from primedepth.models.group_norms import set_official_group_norms
from primedepth.models.trained.layers import ResnetBlock, Upsample2x


def _randomise(module):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return module.eval()


@pytest.mark.parametrize("band", [2, 3, 5, None])
@pytest.mark.parametrize("channels_last", [False, True])
def test_in_place_residual_block_equals_forward(band, channels_last):
    block = _randomise(ResnetBlock(8, 8))
    x = torch.randn(2, 8, 13, 11)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = block(x)
    with torch.inference_mode():
        holder = [x.clone()]
        ptr = holder[0].data_ptr()
        out = block.forward_banded(holder, band, in_place=True)
    assert out.data_ptr() == ptr  # written into its input: no second full-size tensor
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("band", [2, 3, 7])
@pytest.mark.parametrize("cin,cout", [(8, 4), (6, 6)])
def test_upsampled_block_equals_block_of_upsample(band, cin, cout):
    block, up = _randomise(ResnetBlock(cin, cout)), _randomise(Upsample2x(cin))
    low = torch.randn(1, cin, 5, 6)
    expected = block(up(low))
    with torch.inference_mode():
        out = block.forward_upsampled_banded(low, up, band)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("band", [2, 4])
def test_in_place_diffusers_resnet_equals_forward(band):
    resnet = set_official_group_norms(
        _randomise(ResnetBlock2D(in_channels=8, out_channels=8, temb_channels=None, groups=4))
    )
    x = torch.randn(1, 8, 9, 10)
    expected = resnet(x, None)
    with torch.inference_mode():
        out = diffusers_resnet_banded(resnet, [x.clone()], band, in_place=True)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("band", [2, 3, None])
def test_banded_block_with_a_skip_conv_equals_forward(band):
    block = _randomise(ResnetBlock(8, 4))
    x = torch.randn(1, 8, 11, 9)
    expected = block(x)
    with torch.inference_mode():
        out = block.forward_banded([x.clone()], band)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
