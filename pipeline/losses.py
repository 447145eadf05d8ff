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

    Accumulated in fp32 even under autocast: bf16 sums over H*W lose the small entries. On CUDA
    (gram_cuda) bf16 features go to the tensor cores as they are, with fp32 accumulation and output:
    products of bf16 numbers are exact in fp32, so these are the sums of the features cast first.
    """
    if features.is_cuda:
        return gram_cuda(features)
    b, c, h, w = features.shape
    f = features.float().reshape(b, c, h * w)
    with torch.autocast(device_type=f.device.type, enabled=False):
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


SPLIT_K_CHUNK = 1 << 14  # the shortest stretch of H*W one product of a split Gram sums over
SPLIT_K_PRODUCTS = 64  # split until batch x pieces gives this many independent products


def gram_splits(batch: int, length: int) -> int:
    """How many pieces to cut H*W = length into: a divisor of it, so the pieces are views.

    A Gram is a (C x K) by (K x C) product with C = 64-512 and K = H*W up to ~10^6 at 720p: one
    output tile per sample, so a batched GEMM keeps a few of a GPU's 132 multiprocessors busy. Cut
    K into pieces, one product each, then sum them (split-K)."""
    want = min(SPLIT_K_PRODUCTS // max(batch, 1), length // SPLIT_K_CHUNK)
    return next((s for s in range(max(want, 1), 1, -1) if length % s == 0), 1)


def gram_cuda(features: torch.Tensor, splits: int | None = None) -> torch.Tensor:
    """gram() for channels-last features (what the engine makes on CUDA; others are copied once),
    split-K (gram_splits) and, for bf16/fp16 features, with fp32 accumulation on the tensor cores.
    Runs anywhere; splits=None chooses as on a GPU."""
    b, c, h, w = features.shape
    k = h * w
    rows = features.permute(0, 2, 3, 1).reshape(b, k, c)  # (B, K, C): a view when channels-last
    splits = gram_splits(b, k) if splits is None else splits
    rows = rows.reshape(b * splits, k // splits, c)
    with torch.autocast(device_type=features.device.type, enabled=False):
        if rows.dtype in (torch.bfloat16, torch.float16) and _low_precision_gram_works(features.device):
            products = torch.bmm(rows.transpose(1, 2), rows, out_dtype=torch.float32)
        else:
            rows = rows.float()
            products = torch.bmm(rows.transpose(1, 2), rows)
    return products.view(b, splits, c, c).sum(1) / (c * k)


_LOW_PRECISION_GRAM: dict[torch.device, bool] = {}


def _low_precision_gram_works(device: torch.device) -> bool:
    """Whether bmm with out_dtype=float32 (CUDA only in torch 2.14) runs forward and backward
    here; asked once per device, else the features are cast to fp32 first (the same sums)."""
    if device not in _LOW_PRECISION_GRAM:
        try:
            a = torch.ones(1, 8, 4, device=device, dtype=torch.bfloat16, requires_grad=True)
            out = torch.bmm(a.transpose(1, 2), a, out_dtype=torch.float32)
            out.sum().backward()
            _LOW_PRECISION_GRAM[device] = out.dtype == torch.float32 and a.grad is not None
        except (RuntimeError, TypeError, NotImplementedError):
            _LOW_PRECISION_GRAM[device] = False
    return _LOW_PRECISION_GRAM[device]


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


STRENGTH_REFERENCE_SIZE = 512  # px, long side at which strength 0.5 is --style-weight as given


def style_weight_at(weight: float, strength: float, long_side: int) -> float:
    """The style loss's weight for --style-weight `weight` at --strength and the output's long side.

    Strength is a log scale around the weight: x 10^(4 (strength - 0.5)), so each quarter of
    strength is 10x the pull (0.25: a tenth, 0.75: ten times). Below 512 px the pull shrinks with
    the size (256 px: half): the style's strokes are the painting's, scaled to the picture, and on
    a small picture they covered a portrait's face at the weight that suits 512 px
    (docs/strength.md measures it). Departure from Gatys et al., whose weights are fixed numbers.
    """
    return weight * 10 ** (4 * (strength - 0.5)) * min(1.0, long_side / STRENGTH_REFERENCE_SIZE)


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


def temporal_loss(images: torch.Tensor, warped_prev: torch.Tensor, mask: torch.Tensor,
                  detail: float = 1.0, sigma: float = 1.0) -> torch.Tensor:
    """Ruder et al. (2016) temporal loss: masked MSE to the previous output warped into this frame.

    images, warped_prev: (B, 3, H, W) in [0, 1]; mask: (B, 1, H, W) in [0, 1] (0 = disoccluded or
    unreliable). Divided by the pixel count D = 3*H*W as in the paper -> (B,).

    Departure from Ruder et al.: with detail < 1 the difference is split into its Gaussian low pass
    (sigma px) and the rest, and the rest is weighted by `detail`. Every warp resamples the strokes
    and blurs them a little; held at every scale, that blur is kept and builds up frame after frame
    (the painting softens along the chain). Held at the coarse scales only, the painting stays where
    the flow puts it while the style term re-sharpens its strokes.
    """
    diff = images.float() - warped_prev.float()
    if detail >= 1.0:
        return (diff.square() * mask).flatten(1).mean(1)
    coarse = gaussian_blur(diff, sigma)
    fine = diff - coarse
    return ((coarse.square() + detail * fine.square()) * mask).flatten(1).mean(1)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian low pass of (B, C, H, W) (radius 2 sigma, reflected borders), same shape:
    torchvision's, imported here so that a job that never warps does not load its transforms."""
    from torchvision.transforms.functional import gaussian_blur as blur

    side = 2 * max(1, int(2 * sigma + 0.5)) + 1
    return blur(images, [side, side], [sigma, sigma])
