import math

import pytest
import torch

from primedepth.constants import IGNORE_LABEL
from primedepth.training.losses import (
    align_least_squares,
    combine_losses,
    dice_loss,
    focal_loss,
    normalise_target,
    ssi_loss,
)


def _target(b=2, h=12, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(b, h, w, generator=g) * 2 + 0.1
    mask = torch.rand(b, h, w, generator=g) > 0.2
    return t, mask


def test_ssi_zero_for_affine_copy_of_target():
    t, mask = _target()
    for scale, shift in ((1.0, 0.0), (3.5, -2.0), (-0.25, 7.0)):
        pred = (scale * t + shift).unsqueeze(1).repeat(1, 3, 1, 1)
        assert ssi_loss(pred, t, mask).item() < 1e-10


def test_ssi_invariant_to_scale_and_shift_of_prediction():
    t, mask = _target()
    pred = torch.randn(2, 3, 12, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    base = ssi_loss(pred, t, mask, reduction="none")
    assert (base > 0.1).all()
    for scale, shift in ((2.0, 0.0), (0.01, 5.0), (-3.0, -1.0), (1e3, 1e3)):
        moved = ssi_loss(scale * pred + shift, t, mask, reduction="none")
        torch.testing.assert_close(moved, base, rtol=1e-5, atol=1e-7)


def test_ssi_ignores_invalid_pixels_and_matches_hand_computation():
    t = torch.tensor([[[1.0, 2.0, 4.0, 100.0]]])
    mask = torch.tensor([[[True, True, True, False]]])
    pred = torch.tensor([[[0.0, 1.0, 1.0, -50.0]]])
    # target normalised: median 2 (lower median of 1,2,4), MAD = (1+0+2)/3 = 1 -> (-1, 0, 2)
    tn = normalise_target(t.reshape(1, -1), mask.reshape(1, -1))[0, :3]
    torch.testing.assert_close(tn, torch.tensor([-1.0, 0.0, 2.0]))
    # least squares of (0,1,1) -> (-1,0,2): cov 12/9, var 6/9 -> s = 2, b = 1/3 - 2 * 2/3 = -1;
    # fitted (-1, 1, 1), residuals (0, -1, 1)
    s, b = align_least_squares(pred.reshape(1, -1)[:, :3], tn[None], torch.ones(1, 3, dtype=torch.bool))
    assert s.item() == pytest.approx(2.0) and b.item() == pytest.approx(-1.0)
    assert ssi_loss(pred, t, mask).item() == pytest.approx(2 / 3)
    # changing an invalid pixel changes nothing
    pred2 = pred.clone()
    pred2[..., 3] = 1e6
    assert ssi_loss(pred2, t, mask).item() == pytest.approx(2 / 3)


def test_ssi_gradient_flows_and_empty_masks_are_safe():
    t, mask = _target()
    mask[1] = False
    pred = torch.randn(2, 3, 12, 10, requires_grad=True)
    loss = ssi_loss(pred, t, mask)
    loss.backward()
    assert pred.grad[0].abs().sum() > 0 and pred.grad[1].abs().sum() == 0
    assert torch.isfinite(loss)


def test_dice_matches_hand_computed_value():
    # one image, 2 classes, 3 pixels (the last unlabelled)
    logits = torch.tensor([[[[2.0, 0.0, 5.0]], [[0.0, 1.0, -5.0]]]])  # (1, 2, 1, 3)
    labels = torch.tensor([[[0, 1, IGNORE_LABEL]]])
    p0 = [1 / (1 + math.exp(-2)), 1 / (1 + math.exp(1))]  # P(class 0) on the two labelled pixels
    p1 = [1 - p0[0], 1 - p0[1]]
    d0 = 1 - (2 * p0[0] + 1) / (p0[0] + p0[1] + 1 + 1)
    d1 = 1 - (2 * p1[1] + 1) / (p1[0] + p1[1] + 1 + 1)
    assert dice_loss(logits, labels).item() == pytest.approx((d0 + d1) / 2, rel=1e-6)


def test_focal_matches_hand_computed_value():
    logits = torch.tensor([[[[2.0, 0.0, 5.0]], [[0.0, 1.0, -5.0]]]])
    labels = torch.tensor([[[0, 1, IGNORE_LABEL]]])
    pt = [1 / (1 + math.exp(-2)), 1 / (1 + math.exp(-1))]
    expected = sum(-((1 - p) ** 2) * math.log(p) for p in pt) / 2
    assert focal_loss(logits, labels, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)
    # gamma = 0 is cross-entropy
    ce = torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE_LABEL)
    assert focal_loss(logits, labels, gamma=0.0).item() == pytest.approx(ce.item(), rel=1e-6)


def test_perfect_segmentation_gives_small_losses_and_bad_labels_raise():
    labels = torch.randint(0, 150, (1, 4, 4))
    logits = torch.nn.functional.one_hot(labels, 150).permute(0, 3, 1, 2).float() * 50
    assert focal_loss(logits, labels).item() < 1e-8
    assert dice_loss(logits, labels).item() < 1e-6
    with pytest.raises(ValueError, match="outside 0..149"):
        dice_loss(logits, torch.full((1, 4, 4), 151))


def test_lambda_carries_no_gradient_and_balances_the_terms():
    w = torch.tensor(2.0, requires_grad=True)
    depth = w**2  # 4, d/dw = 4
    seg = torch.tensor(3.0, requires_grad=True)
    dice, focal = seg * 1.0, seg * 2.0  # 3 + 6 = 9, d/dseg = 3
    terms = combine_losses(depth, dice, focal)
    assert not terms.weight.requires_grad
    assert terms.weight.item() == pytest.approx(9 / 4)
    assert terms.total.item() == pytest.approx(18.0)  # lambda * SSI equals Dice + Focal in value
    terms.total.backward()
    # d total / d w = lambda * dSSI/dw only (lambda is a constant): 9/4 * 4 = 9; if lambda carried gradient it'd be 0
    assert w.grad.item() == pytest.approx(9.0)
    assert seg.grad.item() == pytest.approx(3.0)  # if lambda carried gradient it would be 6


def test_no_segmentation_means_depth_loss_only():
    depth = torch.tensor(0.7)
    terms = combine_losses(depth)
    assert terms.total is depth and terms.weight is None
