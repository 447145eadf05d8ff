"""Stylise a batch of images from given inits and targets (Gatys et al. 2016).

Images are (B, 3, H, W) float32 RGB in [0, 1]. Every loss is per sample and the optimisers keep
per-sample state, so a batch of B behaves like B separate runs (up to floating-point order).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .color import luminance, recombine
from .engine import Engine
from .losses import content_loss, gram, style_loss, target_scale, temporal_loss, temporal_weight_at, tv_loss
from .progress import Callback, Iteration, ignore
from .settings import CONTENT_LAYER, STYLE_LAYERS
from .style_targets import StyleSet, StyleTargets

MIN_SCALE_SIDE = 64  # coarser levels than this have no room for relu5_1 and only cost time
STOP_WINDOW = 20  # iterations over which the relative loss change is averaged for early stopping


@dataclass(frozen=True)
class Temporal:
    """Temporal-loss inputs for a batch: the previous output warped into each frame, and where the
    warp can be trusted. warped_prev (B, 3, H, W) in [0, 1]; mask (B, 1, H, W) in [0, 1].

    For a window of consecutive frames optimised together (video batching), neighbour_flow
    (B, 2, H, W), the backward flow in pixels from frame k to frame k-1 of the batch, and
    neighbour_mask (B, 1, H, W) (zero for k = 0) add a loss between neighbours inside the batch."""

    warped_prev: torch.Tensor
    mask: torch.Tensor
    neighbour_flow: torch.Tensor | None = None
    neighbour_mask: torch.Tensor | None = None

    def to(self, device: torch.device) -> "Temporal":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Temporal(move(self.warped_prev), move(self.mask), move(self.neighbour_flow),
                        move(self.neighbour_mask))


def warp_batch(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Differentiable backward warp: out[k, :, y, x] = images[k, :, y + v, x + u] (bilinear, border
    clamped). images (B, C, H, W); flow (B, 2, H, W) in pixels, (u, v) = (x, y) displacement."""
    b, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=images.device, dtype=torch.float32),
                            torch.arange(w, device=images.device, dtype=torch.float32), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)


@dataclass
class Result:
    images: torch.Tensor  # (B, 3, H, W) in [0, 1], on the CPU
    content: torch.Tensor  # (B,) normalised content loss (unweighted)
    style: torch.Tensor  # (B,) normalised style loss (unweighted)
    total: torch.Tensor  # (B,) weighted objective
    iterations: int  # iterations actually run (the longest sample)


class BatchedLBFGS:
    """L-BFGS with unit steps and no line search, as in Gatys' and Johnson's implementations, but
    with one history per batch sample: torch.optim.LBFGS would couple the samples through shared
    dot products. All state stays on the device: no host synchronisation per step."""

    def __init__(self, batch: int, history: int = 10, device: torch.device | None = None):
        self.history = history
        self.pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (s, y, rho)
        self.prev_grad: torch.Tensor | None = None
        self.prev_step: torch.Tensor | None = None
        self.h_diag = torch.ones(batch, 1, device=device)

    def step(self, x: torch.Tensor, grad: torch.Tensor, active: torch.Tensor) -> None:
        """x, grad: (B, N); active: (B, 1) float 0/1. Updates x in place."""
        if self.prev_grad is not None:
            y = grad - self.prev_grad
            s = self.prev_step
            ys = (y * s).sum(1, keepdim=True)
            ok = ys > 1e-10  # curvature condition, per sample; a failing sample skips this pair
            rho = torch.where(ok, 1.0 / ys.clamp_min(1e-10), torch.zeros_like(ys))
            self.pairs.append((s, y, rho))
            del self.pairs[: -self.history]
            yy = (y * y).sum(1, keepdim=True).clamp_min(1e-20)
            self.h_diag = torch.where(ok, ys / yy, self.h_diag)
            t = 1.0
        else:
            # First step: as torch.optim.LBFGS, scale so the step is at most 1 in L1 norm.
            t = (1.0 / grad.abs().sum(1, keepdim=True)).clamp(max=1.0)
        q = -grad
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * (s * q).sum(1, keepdim=True)
            alphas.append(a)
            q = q - a * y
        r = q * self.h_diag
        for (s, y, rho), a in zip(self.pairs, reversed(alphas)):
            b = rho * (y * r).sum(1, keepdim=True)
            r = r + s * (a - b)
        step = r * t * active
        x.add_(step)
        self.prev_grad = grad
        self.prev_step = step


class BatchedAdam:
    """torch.optim.Adam, with samples that stopped early held still."""

    def __init__(self, param: torch.Tensor, lr: float):
        self.param = param
        self.opt = torch.optim.Adam([param], lr=lr)

    def step(self, x: torch.Tensor, grad: torch.Tensor, active: torch.Tensor) -> None:
        """x: (B, N) view of the parameter; grad: (B, N); active: (B, 1) float 0/1."""
        before = x.clone()
        self.param.grad = grad.view_as(self.param)
        self.opt.step()
        x.copy_(torch.where(active.bool(), x, before))


def content_targets(engine: Engine, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Content-layer activations of (B, 3, H, W) content and their per-sample normalisers (B,)."""
    with torch.no_grad():
        target = engine.features(content)[CONTENT_LAYER].detach()
    return target, target_scale(target)


def objective(engine: Engine, x: torch.Tensor, content_target: torch.Tensor, content_scale: torch.Tensor,
              style: StyleTargets, temporal: Temporal | None) -> tuple[torch.Tensor, ...]:
    """Per-sample (total, content, style) losses of images x (B, 3, H, W)."""
    s = engine.settings
    feats = engine.features(x)
    c = content_loss(feats[CONTENT_LAYER], content_target, content_scale)
    st = style_loss([gram(feats[layer]) for layer in STYLE_LAYERS], style.grams, style.scales,
                    s.style_layer_weights)
    total = s.content_weight * c + s.style_weight * st + s.tv_weight * tv_loss(x)
    if temporal is not None and s.temporal_weight > 0:
        weight = temporal_weight_at(s.temporal_weight, *x.shape[-2:])
        total = total + weight * temporal_loss(x, temporal.warped_prev, temporal.mask)
        if temporal.neighbour_flow is not None and x.shape[0] > 1:
            # Frame k against frame k-1 of the same batch, warped into k. Frame k-1 is detached: the
            # pull runs forwards only, as in the sequential chain. Letting it reach k-1 too made the
            # window's frames agree with each other but drag its first frame away from the finished
            # frame before the window: 1.4-1.6x batch 1's E_warp at window boundaries (docs/batching.md).
            previous = torch.cat([x[:1], x[:-1]]).detach()
            warped = warp_batch(previous, temporal.neighbour_flow)
            total = total + weight * temporal_loss(x, warped, temporal.neighbour_mask)
    return total, c, st


def optimise(engine: Engine, init: torch.Tensor, content: torch.Tensor, style: StyleTargets, *,
             iterations: int, temporal: Temporal | None = None, scale: int = 1, scales: int = 1,
             progress: Callback = ignore) -> Result:
    """Run the optimiser from init (B, 3, H, W) towards content (B, 3, H, W) and the style targets.

    Stops a sample early when its loss changed by less than settings.tolerance (relative, per
    iteration, averaged over STOP_WINDOW iterations); the batch ends when all have stopped.
    """
    s = engine.settings
    device = engine.device
    content = content.to(device)
    if temporal is not None:
        temporal = temporal.to(device)
    c_target, c_scale = content_targets(engine, content)
    x = init.to(device, dtype=torch.float32).clone(memory_format=torch.contiguous_format).requires_grad_(True)
    b = x.shape[0]
    optimizer = (BatchedLBFGS(b, device=device) if s.optimizer == "lbfgs"
                 else BatchedAdam(x, s.learning_rate))
    active = torch.ones(b, 1, device=device)
    # Losses stay on the device; the host looks at them only every `check_every` steps.
    check_every = 1 if device.type == "cpu" else 10
    history: list[torch.Tensor] = []
    done = 0

    def loss_and_grad() -> tuple[torch.Tensor, torch.Tensor]:
        total, _, _ = objective(engine, x, c_target, c_scale, style, temporal)
        (grad,) = torch.autograd.grad(total.sum(), x)
        return total, grad

    for it in range(1, iterations + 1):
        # guarded: a --compile failure here falls back to eager and redoes the step (engine.py).
        total, grad = engine.guarded(loss_and_grad)
        engine.report(progress)
        with torch.no_grad():
            optimizer.step(x.view(b, -1), grad.reshape(b, -1), active)
        history.append(total.detach())
        done = it
        if it % check_every == 0 or it == iterations:
            losses = torch.stack(history[-(STOP_WINDOW + 1):]).cpu()
            progress(Iteration(scale, scales, it, iterations, float(losses[-1].sum())))
            if s.tolerance > 0 and len(history) > STOP_WINDOW:
                first, last = losses[0], losses[-1]
                change = (first - last).abs() / first.abs().clamp_min(1e-12) / STOP_WINDOW
                still = (change >= s.tolerance).float().view(b, 1).to(device)
                active = active * still
                if not bool(active.any()):
                    break
        if not torch.isfinite(total).all():
            break
    with torch.no_grad():
        total, c, st = objective(engine, x, c_target, c_scale, style, temporal)
    return Result(x.detach().clamp(0, 1).cpu(), c.cpu(), st.cpu(), total.cpu(), done)


def scale_sizes(size: tuple[int, int], scales: int) -> list[tuple[int, int]]:
    """Coarse-to-fine working sizes (h, w), each level half the next, ending at size."""
    h, w = size
    out = []
    for k in reversed(range(scales)):
        f = 0.5 ** k
        level = (max(1, round(h * f)), max(1, round(w * f)))
        if max(level) >= MIN_SCALE_SIDE or k == 0:
            out.append(level)
    return out


def resize_batch(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *size): area filter down, bicubic up, clamped to [0, 1]."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    if size[0] * size[1] < images.shape[-2] * images.shape[-1]:
        return F.interpolate(images, size=size, mode="area")
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def stylise(engine: Engine, styles: StyleSet, content: torch.Tensor, init: torch.Tensor, *,
            iterations: int, scales: int, temporal: Temporal | None = None,
            progress: Callback = ignore) -> Result:
    """Coarse-to-fine stylisation of content (B, 3, H, W) from init (B, 3, H', W'), both in [0, 1].

    Each level starts from the previous level's result upsampled. With --preserve-colors the
    optimisation runs on luminance and the content's chroma is put back at the end.
    """
    preserve = engine.settings.preserve_colors
    target_content = luminance(content) if preserve else content
    x = luminance(init) if preserve else init
    sizes = scale_sizes(tuple(content.shape[-2:]), scales)
    result = None
    for level, size in enumerate(sizes, start=1):
        level_content = resize_batch(target_content, size)
        x = resize_batch(x, size)
        temporal_level = temporal if size == tuple(content.shape[-2:]) else None
        result = optimise(engine, x, level_content, styles.targets(size), iterations=iterations,
                          temporal=temporal_level, scale=level, scales=len(sizes), progress=progress)
        x = result.images
    if preserve:
        result.images = recombine(result.images, content)
    return result
