"""Losses as small pure functions. Every loss returns one value per sample, shape (B,), float32,
so that a batch of B images optimises exactly like B separate runs.

Departure from Gatys et al. (2016): each content and style layer term is divided by the mean square
of its *target* (computed once). The paper's raw terms differ by orders of magnitude between layers
and between weight sources (Caffe 0..255 vs ImageNet-normalised pixels), so its weights only work for
one network and one scaling. Normalised, every layer starts near 1 and the default weights carry over
to `--weights torchvision` and to any working size.
"""
from __future__ import annotations

import torch


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices of (B, C, H, W) features -> (B, C, C) float32, each divided by C*H*W.

    Computed in fp32 even under autocast: bf16 sums over H*W lose the small entries.
    """
    b, c, h, w = features.shape
    f = features.float().reshape(b, c, h * w)
    with torch.autocast(device_type=f.device.type, enabled=False):
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def target_scale(target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean square of a target (B, ...) -> (B,) float32, the normaliser of its loss."""
    return target.float().flatten(1).square().mean(1).clamp_min(1e-12)


def content_loss(features: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """MSE between (B, C, H, W) features and their target, / scale (B,) -> (B,)."""
    diff = features.float() - target.float()
    return diff.flatten(1).square().mean(1) / scale


def style_loss(grams: list[torch.Tensor], targets: list[torch.Tensor], scales: list[torch.Tensor],
               layer_weights: tuple[float, ...]) -> torch.Tensor:
    """Weighted sum over layers of MSE(Gram, target Gram) / scale -> (B,).

    grams[i]: (B, C_i, C_i); targets[i]: (B or 1, C_i, C_i); scales[i]: (B or 1,).
    """
    total = torch.zeros(grams[0].shape[0], device=grams[0].device)
    for g, t, s, w in zip(grams, targets, scales, layer_weights):
        total = total + w * (g - t).flatten(1).square().mean(1) / s
    return total / sum(layer_weights)


def tv_loss(images: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared neighbour difference of (B, 3, H, W) images in [0, 1] -> (B,)."""
    x = images.float()
    dx = (x[..., :, 1:] - x[..., :, :-1]).square().flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).square().flatten(1).mean(1)
    return dx + dy


TEMPORAL_REFERENCE_SIZE = 512  # px, long side at which --temporal-weight holds as given


def temporal_weight_at(weight: float, height: int, width: int) -> float:
    """The temporal weight for (height, width) frames: `weight` up to 512 px long side, then growing
    with the square of the long side (1024 px: 4x).

    Departure from Ruder et al. (2016), whose weight is one number: with every term a per-pixel
    mean, one weight let the chain flicker more the larger the frames; the square held E_warp level
    across sizes on native footage (measured in docs/temporal_size.md, reasoning in docs/design.md).
    Below 512 px the weight is not lowered: small renders keep the lower flicker they already had.
    """
    return weight * max(1.0, max(height, width) / TEMPORAL_REFERENCE_SIZE) ** 2


def temporal_loss(images: torch.Tensor, warped_prev: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ruder et al. (2016) temporal loss: masked MSE to the previous output warped into this frame.

    images, warped_prev: (B, 3, H, W) in [0, 1]; mask: (B, 1, H, W) in [0, 1] (0 = disoccluded or
    unreliable). Divided by the pixel count D = 3*H*W as in the paper -> (B,).
    """
    diff = (images.float() - warped_prev.float()).square() * mask
    return diff.flatten(1).mean(1)
