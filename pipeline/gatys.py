"""Stylise a batch of images from given inits and targets (Gatys et al. 2016).

Images are (B, 3, H, W) float32 RGB in [0, 1]. Every loss is per sample and the optimisers keep
per-sample state, so a batch of B behaves like B separate runs (up to floating-point order).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from .color import luminance, recombine
from .cuda_graphs import Iterations
from .engine import Engine
from .losses import (
    content_loss,
    gram,
    style_loss,
    style_weight_at,
    target_scale,
    temporal_loss,
    temporal_weight_at,
    tv_loss,
)
from .optimizers import BatchedAdam, BatchedLBFGS
from .progress import Callback, Iteration, ignore
from .settings import CONTENT_LAYER, MIN_SIDE, STYLE_LAYERS, Settings
from .style_targets import StyleTargets

if TYPE_CHECKING:
    from .prepare import Prepared

MIN_SCALE_SIDE = 64  # coarser levels than this have no room for relu5_1 and only cost time
STOP_WINDOW = 20  # iterations over which the relative loss change is averaged for early stopping


@dataclass(frozen=True)
class Temporal:
    """Temporal-loss inputs for a batch: the previous output warped into each frame, and where the
    warp can be trusted. warped_prev (B, 3, H, W) in [0, 1]; mask (B, 1, H, W) in [0, 1].

    For a window of consecutive frames optimised together (video batching), neighbour_flow
    (B, 2, H, W), the backward flow in pixels from frame k to frame k-1 of the batch, and
    neighbour_mask (B, 1, H, W) (zero for k = 0) add a loss between neighbours inside the batch;
    neighbour_grid is that flow as grid_sample's sampling grid (prepared once per pass)."""

    warped_prev: torch.Tensor
    mask: torch.Tensor
    neighbour_flow: torch.Tensor | None = None
    neighbour_mask: torch.Tensor | None = None
    neighbour_grid: torch.Tensor | None = None

    def prepared(self, device: torch.device) -> "Temporal":
        """On the device, in fp32, with the neighbour grid: what the iterations read unchanged."""
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, torch.float32)

        flow = move(self.neighbour_flow)
        return Temporal(move(self.warped_prev), move(self.mask), flow, move(self.neighbour_mask),
                        None if flow is None else flow_grid(flow))


def flow_grid(flow: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) backward flow in pixels, (u, v) = (x, y) -> grid_sample's grid (B, H, W, 2)."""
    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=torch.float32),
                            torch.arange(w, device=flow.device, dtype=torch.float32), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return torch.stack([gx, gy], dim=-1)


def sample(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear, border-clamped sampling of images (B, C, H, W) at grid (B, H, W, 2)."""
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp_batch(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Differentiable backward warp: out[k, :, y, x] = images[k, :, y + v, x + u] (bilinear, border
    clamped). images (B, C, H, W); flow (B, 2, H, W) in pixels, (u, v) = (x, y) displacement."""
    return sample(images, flow_grid(flow))


@dataclass
class Result:
    images: torch.Tensor  # (B, 3, H, W) in [0, 1], on the CPU
    content: torch.Tensor  # (B,) normalised content loss (unweighted)
    style: torch.Tensor  # (B,) normalised style loss (unweighted)
    total: torch.Tensor  # (B,) weighted objective
    iterations: int  # iterations actually run (the longest sample)


def content_targets(engine: Engine, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Content-layer activations of (B, 3, H, W) content and their per-sample normalisers (B,)."""
    with torch.no_grad():
        target = engine.features(content)[CONTENT_LAYER].detach()
    return target, target_scale(target)


def objective(engine: Engine, s: Settings, x: torch.Tensor, content_target: torch.Tensor,
              content_scale: torch.Tensor, style: StyleTargets, temporal: Temporal | None) -> tuple[torch.Tensor, ...]:
    """Per-sample (total, content, style) losses of images x (B, 3, H, W) under settings s."""
    feats = engine.features(x)
    c = content_loss(feats[CONTENT_LAYER], content_target, content_scale)
    st = style_loss([gram(feats[layer]) for layer in STYLE_LAYERS], style.grams, style.scales,
                    s.style_layer_weights)
    style_weight = style_weight_at(s.style_weight, s.strength, s.size)
    total = s.content_weight * c + style_weight * st + s.tv_weight * tv_loss(x)
    if temporal is not None and s.temporal_weight > 0:
        weight = temporal_weight_at(s.temporal_weight, *x.shape[-2:])
        total = total + weight * temporal_loss(x, temporal.warped_prev, temporal.mask, s.temporal_detail,
                                               s.temporal_sigma)
        if temporal.neighbour_flow is not None and x.shape[0] > 1:
            # Frame k against frame k-1 of the same batch, warped into k. Frame k-1 is detached: the
            # pull runs forwards only, as in the sequential chain. Letting it reach k-1 too made the
            # window's frames agree with each other but drag its first frame away from the finished
            # frame before the window: 1.4-1.6x batch 1's E_warp at window boundaries (docs/batching.md).
            previous = torch.cat([x[:1], x[:-1]]).detach()
            grid = temporal.neighbour_grid
            if grid is None:
                grid = flow_grid(temporal.neighbour_flow)
            total = total + weight * temporal_loss(x, sample(previous, grid), temporal.neighbour_mask,
                                                   s.temporal_detail, s.temporal_sigma)
    return total, c, st


def optimise(engine: Engine, s: Settings, init: torch.Tensor, content: torch.Tensor, style: StyleTargets, *,
             iterations: int, temporal: Temporal | None = None, scale: int = 1, scales: int = 1,
             progress: Callback = ignore) -> Result:
    """Run the optimiser from init (B, 3, H, W) towards content (B, 3, H, W) and the style targets.

    Stops a sample early when its loss changed by less than settings.tolerance (relative, per
    iteration, averaged over STOP_WINDOW iterations); the batch ends when all have stopped.
    """
    device = engine.device
    c_target, c_scale = content_targets(engine, content.to(device))
    c_target = c_target.float()  # once, not at every iteration
    temporal = None if temporal is None else temporal.prepared(device)
    # The images live in one flat (B, N) buffer that the optimiser updates in place; on CUDA in
    # channels-last order, the layout cuDNN is fastest with, so no iteration copies them.
    channels_last = device.type == "cuda"
    flat = _flatten(init.to(device, torch.float32), channels_last).requires_grad_(True)
    b, shape = flat.shape[0], tuple(init.shape)
    optimizer = BatchedLBFGS(flat.detach()) if s.optimizer == "lbfgs" else BatchedAdam(flat, s.learning_rate)
    active = torch.ones(b, 1, device=device)

    def iteration() -> torch.Tensor:
        # The named ranges are what bench/gpu_profile.py attributes GPU time to.
        with record_function("nstvid.objective"):
            x = _unflatten(flat, shape, channels_last)
            # --compile: the objective compiled (engine.py); looked up each time, for its fallback.
            total, _, _ = engine.compiled_version(objective)(engine, s, x, c_target, c_scale, style, temporal)
        with record_function("nstvid.backward"):
            (grad,) = torch.autograd.grad(total.sum(), flat)
        with torch.no_grad(), record_function("nstvid.optimizer"):
            optimizer.step(flat.detach(), grad, active)
        return total.detach()

    run = Iterations(engine, iteration)  # eager, or replays of a CUDA graph (cuda_graphs.py)
    # Losses stay on the device; the host looks at them only every `check_every` steps.
    check_every = 1 if device.type == "cpu" else 10
    history: list[torch.Tensor] = []
    for it in range(1, iterations + 1):
        history.append(run())
        engine.report(progress)  # e.g. a --compile fallback met in this iteration
        if it % check_every and it != iterations:
            continue
        losses = torch.stack(history[-(STOP_WINDOW + 1):]).cpu()
        progress(Iteration(scale, scales, it, iterations, float(losses[-1].sum())))
        if not torch.isfinite(losses[-check_every:]).all():
            break
        if s.tolerance > 0 and len(history) > STOP_WINDOW:
            change = (losses[0] - losses[-1]).abs() / losses[0].abs().clamp_min(1e-12) / STOP_WINDOW
            active.mul_((change >= s.tolerance).float().view(b, 1).to(device))  # in place: graphs read it
            if not bool(active.any()):
                break
    x = _unflatten(flat.detach(), shape, channels_last)
    with torch.no_grad():
        total, c, st = objective(engine, s, x, c_target, c_scale, style, temporal)
    return Result(x.clamp(0, 1).contiguous().cpu(), c.cpu(), st.cpu(), total.cpu(), len(history))


def _flatten(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """(B, 3, H, W) -> a new (B, N) tensor, channels-last order if asked."""
    if channels_last:
        return images.permute(0, 2, 3, 1).reshape(images.shape[0], -1).clone()
    return images.reshape(images.shape[0], -1).clone()


def _unflatten(flat: torch.Tensor, shape: tuple[int, ...], channels_last: bool) -> torch.Tensor:
    """The (B, 3, H, W) view of a flat (B, N) buffer (channels-last strides if so flattened)."""
    b, c, h, w = shape
    if channels_last:
        return flat.view(b, h, w, c).permute(0, 3, 1, 2)
    return flat.view(shape)


def scale_sizes(size: tuple[int, int], scales: int) -> list[tuple[int, int]]:
    """Coarse-to-fine working sizes (h, w), each level half the next, ending at size."""
    h, w = size
    out = []
    for k in reversed(range(scales)):
        f = 0.5 ** k
        level = (max(1, round(h * f)), max(1, round(w * f)))
        if (max(level) >= MIN_SCALE_SIDE and min(level) >= MIN_SIDE) or k == 0:
            out.append(level)
    return out


def resize_batch(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *size): area filter down, bicubic up, clamped to [0, 1]."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    if size[0] * size[1] < images.shape[-2] * images.shape[-1]:
        return F.interpolate(images, size=size, mode="area")
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def coarse_to_fine(prepared: Prepared, content: torch.Tensor, init: torch.Tensor, *,
                   iterations: int, scales: int, temporal: Temporal | None = None,
                   progress: Callback = ignore) -> Result:
    """Coarse-to-fine stylisation of content (B, 3, H, W) from init (B, 3, H', W'), both in [0, 1].

    Each level starts from the previous level's result upsampled. With --preserve-colors the
    optimisation runs on luminance and the content's chroma is put back at the end.
    """
    engine, styles, settings = prepared.engine, prepared.styles, prepared.settings
    preserve = settings.preserve_colors
    target_content = luminance(content) if preserve else content
    x = luminance(init) if preserve else init
    sizes = scale_sizes(tuple(content.shape[-2:]), scales)
    result = None
    for level, size in enumerate(sizes, start=1):
        level_content = resize_batch(target_content, size)
        x = resize_batch(x, size)
        temporal_level = temporal if size == tuple(content.shape[-2:]) else None
        result = optimise(engine, settings, x, level_content, styles.targets(size), iterations=iterations,
                          temporal=temporal_level, scale=level, scales=len(sizes), progress=progress)
        x = result.images
    if preserve:
        result.images = recombine(result.images, content)
    return result
