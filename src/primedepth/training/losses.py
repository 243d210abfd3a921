"""PrimeDepth's training losses (the PrimeDepth paper, §3.4).

* ``ssi_loss``: scale-and-shift-invariant MSE on inverse depth in pixel space. The target is normalised per image by
  its median and mean absolute deviation over valid pixels; the prediction is aligned to it by closed-form least
  squares (per image, valid pixels only); the loss is the mean squared residual over valid pixels. The alignment is
  part of the graph, so the loss is exactly invariant to any positive or negative scale and any shift of the
  prediction.
* ``dice_loss`` + ``focal_loss`` (gamma = 2): the 150-class segmentation regulariser on one-hot targets, with
  unlabelled pixels (``ignore_index``) left out.
* ``combine_losses``: total = Dice + Focal + lambda * SSI with lambda = stop_gradient((Dice + Focal) / SSI).
* ``latent_depth_loss``: the ``Latent`` ablation, the depth loss in the frozen VAE's latent space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..constants import IGNORE_LABEL


def _masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row lower median of ``x`` (B, N) over ``mask`` (B, N); rows without valid entries give 0."""
    big = torch.finfo(x.dtype).max
    filled = torch.where(mask, x, torch.full_like(x, big))
    sorted_x, _ = filled.sort(dim=1)
    count = mask.sum(dim=1)
    idx = ((count - 1).clamp(min=0) // 2).unsqueeze(1)
    med = sorted_x.gather(1, idx).squeeze(1)
    return torch.where(count > 0, med, torch.zeros_like(med))


def normalise_target(target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(t - median) / mean|t - median| per image over valid pixels. ``target``/``mask``: (B, N)."""
    med = _masked_median(target, mask).unsqueeze(1)
    dev = ((target - med).abs() * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1)
    return (target - med) / dev.clamp(min=eps)


def align_least_squares(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eps: float = 1e-12):
    """Scale ``s`` and shift ``b`` (each (B,)) minimising sum_valid (s * pred + b - target)^2, in closed form.

    Computed on the centred prediction (numerically stable); a constant prediction gets s = 0 and fits the mean.
    """
    m = mask.to(pred.dtype)
    n = m.sum(1).clamp(min=1)
    mean_p = (m * pred).sum(1) / n
    mean_t = (m * target).sum(1) / n
    pc = (pred - mean_p[:, None]) * m
    var = (pc * pc).sum(1)
    ok = var > eps * n
    scale = torch.where(ok, (pc * target).sum(1) / torch.where(ok, var, torch.ones_like(var)), torch.zeros_like(var))
    shift = mean_t - scale * mean_p
    return scale, shift


def ssi_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Scale-and-shift-invariant loss on inverse depth.

    ``pred``: (B, C, H, W) (channels are averaged, as the pipeline averages the 3 depth channels) or (B, H, W);
    ``target``: (B, H, W) or (B, 1, H, W) inverse depth; ``mask``: same spatial shape, True where the target is
    valid (default: finite targets). Images with fewer than 2 valid pixels contribute nothing. ``reduction``:
    ``"mean"`` over images with valid pixels, or ``"none"`` for the per-image losses.
    """
    if pred.dim() == 4:
        pred = pred.mean(dim=1)
    if target.dim() == 4:
        target = target[:, 0]
    if mask is None:
        mask = torch.isfinite(target)
    elif mask.dim() == 4:
        mask = mask[:, 0]
    if pred.shape != target.shape or mask.shape != target.shape:
        raise ValueError(
            f"ssi_loss: prediction {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)} must have the same spatial size"
        )
    b = pred.shape[0]
    out_dtype = torch.float32
    pred = pred.double().reshape(b, -1)  # float64 inside: exact invariance, negligible cost next to the network
    mask = mask.bool().reshape(b, -1)
    target = torch.where(mask, target.double().reshape(b, -1), torch.zeros_like(pred))
    t = normalise_target(target, mask)
    scale, shift = align_least_squares(pred, t, mask)
    residual = (scale[:, None] * pred + shift[:, None] - t) * mask
    count = mask.sum(1)
    per_image = residual.pow(2).sum(1) / count.clamp(min=1)
    if reduction == "none":
        return per_image.to(out_dtype)
    used = count >= 2
    if not used.any():
        return (pred.sum() * 0.0).to(out_dtype)
    return per_image[used].mean().to(out_dtype)


def _one_hot(labels: torch.Tensor, num_classes: int, ignore_index: int):
    valid = labels != ignore_index
    if (labels[valid] >= num_classes).any() or (labels[valid] < 0).any():
        bad = labels[valid][(labels[valid] >= num_classes) | (labels[valid] < 0)][0].item()
        raise ValueError(f"segmentation label {bad} outside 0..{num_classes - 1} (and not ignore_index {ignore_index})")
    safe = torch.where(valid, labels, torch.zeros_like(labels)).long()
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float()
    return onehot * valid.unsqueeze(1), valid


def dice_loss(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL, smooth: float = 1.0
) -> torch.Tensor:
    """Soft Dice on softmax probabilities against one-hot labels, unlabelled pixels left out.

    Per image ``b`` and class ``c``: ``1 - (2 * sum(p * y) + smooth) / (sum(p) + sum(y) + smooth)`` over valid
    pixels; averaged over the classes and then over the images. ``logits``: (B, C, H, W); ``labels``: (B, H, W).
    """
    probs = logits.float().softmax(dim=1)
    onehot, valid = _one_hot(labels, logits.shape[1], ignore_index)
    probs = probs * valid.unsqueeze(1)
    inter = (probs * onehot).sum(dim=(2, 3))
    denom = probs.sum(dim=(2, 3)) + onehot.sum(dim=(2, 3))
    dice = 1.0 - (2.0 * inter + smooth) / (denom + smooth)
    return dice.mean()


def focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, gamma: float = 2.0, ignore_index: int = IGNORE_LABEL
) -> torch.Tensor:
    """Multi-class focal loss ``-(1 - p_t)^gamma * log p_t`` averaged over labelled pixels (0 if there are none)."""
    logp = logits.float().log_softmax(dim=1)
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels)).long()
    logp_t = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -((1.0 - logp_t.exp()) ** gamma) * logp_t
    if not valid.any():
        return logits.sum() * 0.0
    return loss[valid].mean()


@dataclass
class LossTerms:
    total: torch.Tensor
    depth: torch.Tensor  # SSI (or latent) loss, unweighted
    dice: torch.Tensor | None = None
    focal: torch.Tensor | None = None
    weight: torch.Tensor | None = None  # lambda (detached)

    def as_floats(self) -> dict[str, float]:
        out = {"loss": self.total.item(), "depth": self.depth.item()}
        for name in ("dice", "focal", "weight"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.item()
        return out


def combine_losses(
    depth: torch.Tensor, dice: torch.Tensor | None = None, focal: torch.Tensor | None = None, eps: float = 1e-8
) -> LossTerms:
    """Total = Dice + Focal + lambda * depth with lambda = stop_gradient((Dice + Focal) / depth).

    Without a segmentation loss (``NoSegmen``) the total is the depth loss alone.
    """
    if dice is None and focal is None:
        return LossTerms(depth, depth)
    seg = (dice if dice is not None else 0.0) + (focal if focal is not None else 0.0)
    weight = (seg / depth.clamp(min=eps)).detach()
    return LossTerms(seg + weight * depth, depth, dice, focal, weight)


def latent_depth_loss(encode, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``Latent`` ablation: MSE between VAE latents of the predicted and the target depth map.

    The target inverse depth is normalised per image to [-1, 1] over its valid pixels (2nd-98th percentile,
    Marigold-style) and replicated to 3 channels; invalid pixels take the (detached) prediction's value, so they add
    no error. ``encode`` maps (B, 3, H, W) in [-1, 1] to latents (the frozen VAE encoder's posterior mean, scaled);
    gradients flow through it into ``pred`` (B, 3, H, W). Latent cells whose pixels are mostly invalid are left out.
    """
    if target.dim() == 4:
        target = target[:, 0]
    if mask.dim() == 4:
        mask = mask[:, 0]
    b = target.shape[0]
    flat, m = target.float().reshape(b, -1), mask.bool().reshape(b, -1)
    lo = torch.stack([torch.quantile(flat[i][m[i]], 0.02) if m[i].any() else flat.new_zeros(()) for i in range(b)])
    hi = torch.stack([torch.quantile(flat[i][m[i]], 0.98) if m[i].any() else flat.new_ones(()) for i in range(b)])
    norm = ((flat - lo[:, None]) / (hi - lo).clamp(min=1e-6)[:, None] * 2 - 1).clamp(-1.5, 1.5)
    norm = norm.reshape_as(target).unsqueeze(1).expand_as(pred)
    target_img = torch.where(mask.unsqueeze(1).expand_as(pred), norm, pred.detach().float())
    z_pred = encode(pred.float())
    with torch.no_grad():
        z_target = encode(target_img)
    cell = F.adaptive_avg_pool2d(mask.unsqueeze(1).float(), z_pred.shape[-2:]) >= 0.5
    cell = cell.expand_as(z_pred)
    if not cell.any():
        return z_pred.sum() * 0.0
    return (z_pred - z_target).pow(2)[cell].mean()
