"""The pooled self-attention equals the authors' N x N map processed by stretch / pool / resize."""

import pytest
import torch

from primedepth.models.frozen.attention_maps import (
    _stretch_pool_resize,
    naive_self_attention,
    pooled_self_attention,
    region_pooling_matrix,
)

SIZES = [(1, 1), (1, 2), (3, 3), (8, 10), (9, 11), (16, 16), (17, 24), (64, 40)]


@pytest.mark.parametrize("h,w", SIZES)
def test_pooling_matrix_is_the_official_key_axis_processing(h, w):
    basis = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    expected = _stretch_pool_resize(basis, h, w).reshape(h * w, 64)
    assert torch.allclose(region_pooling_matrix(h, w, dtype=torch.float64), expected, atol=1e-12)


@pytest.mark.parametrize("h,w", SIZES)
def test_fused_pooled_attention_matches_naive_map(h, w):
    g = torch.Generator().manual_seed(h * 100 + w)
    q, k, v = (torch.randn(2, 3, h * w, 16, generator=g) for _ in range(3))
    out_fast, pooled_fast = pooled_self_attention(q, k, v, h, w)
    out_naive, pooled_naive = naive_self_attention(q, k, v, h, w)
    torch.testing.assert_close(out_fast, out_naive, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pooled_fast, pooled_naive, rtol=1e-5, atol=1e-6)
    # Rows of P sum to the fraction of each key kept by the stretch-pool-resize: a probability mass check.
    assert torch.all(pooled_fast >= -1e-7)


class _TensorSizes(torch.overrides.TorchFunctionMode):
    """Records the element count of every tensor produced by a torch call."""

    def __init__(self):
        super().__init__()
        self.sizes = [0]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.sizes.append(t.numel())
        return out


def test_pooled_path_never_builds_an_n_by_n_tensor():
    """Guard the memory claim at the Python level; the naive path shows the recorder would notice."""
    h = w = 48
    n = h * w
    q, k, v = (torch.randn(1, 1, n, 8) for _ in range(3))
    with _TensorSizes() as fast:
        pooled_self_attention(q, k, v, h, w)
    with _TensorSizes() as naive:
        naive_self_attention(q, k, v, h, w)
    assert max(fast.sizes) < n * n / 8
    assert max(naive.sizes) >= n * n
