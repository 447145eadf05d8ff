"""The optimisers, with one state per batch sample, so that a batch of B optimises like B runs.

Both take the images as a flat (B, N) float32 tensor (gatys.py keeps the images in one, whatever
their memory layout) and a (B, 1) 0/1 mask of the samples still running.
"""
from __future__ import annotations

import torch


class BatchedLBFGS:
    """L-BFGS with unit steps and no line search, as in Gatys' and Johnson's implementations, but
    with one history per batch sample: torch.optim.LBFGS would couple the samples through shared
    dot products.

    The history is a fixed ring of `history` curvature pairs, newest last. Slots not filled yet hold
    zeros with rho = 0, which the two-loop recursion passes through unchanged (to the bit), so every
    step after the first runs the same kernels on the same buffers: what a CUDA graph can replay
    (cuda_graphs.py). All state stays on the device: no host synchronisation per step.
    """

    def __init__(self, flat: torch.Tensor, history: int = 10):
        b, n = flat.shape
        self.s = flat.new_zeros(history, b, n)  # steps, oldest first
        self.y = flat.new_zeros(history, b, n)  # gradient changes
        self.rho = flat.new_zeros(history, b, 1)  # 1 / (y . s), 0 where the pair is skipped
        self.prev_grad = flat.new_zeros(b, n)
        self.prev_step = flat.new_zeros(b, n)
        self.h_diag = flat.new_ones(b, 1)
        self.started = False

    def step(self, x: torch.Tensor, grad: torch.Tensor, active: torch.Tensor) -> None:
        """x, grad: (B, N); active: (B, 1) float 0/1. Updates x in place."""
        if self.started:
            y = grad - self.prev_grad
            ys = (y * self.prev_step).sum(1, keepdim=True)
            ok = ys > 1e-10  # curvature condition, per sample; a failing sample skips this pair
            self._push(self.prev_step, y, torch.where(ok, 1.0 / ys.clamp_min(1e-10), torch.zeros_like(ys)))
            yy = (y * y).sum(1, keepdim=True).clamp_min(1e-20)
            self.h_diag.copy_(torch.where(ok, ys / yy, self.h_diag))
            t = 1.0
        else:
            # First step: as torch.optim.LBFGS, scale so the step is at most 1 in L1 norm.
            t = (1.0 / grad.abs().sum(1, keepdim=True)).clamp(max=1.0)
            self.started = True
        q = -grad
        alphas = []
        for k in reversed(range(self.s.shape[0])):
            a = self.rho[k] * (self.s[k] * q).sum(1, keepdim=True)
            alphas.append(a)
            q = q - a * self.y[k]
        r = q * self.h_diag
        for k, a in zip(range(self.s.shape[0]), reversed(alphas)):
            b = self.rho[k] * (self.y[k] * r).sum(1, keepdim=True)
            r = r + self.s[k] * (a - b)
        step = r * t * active
        x.add_(step)
        self.prev_grad.copy_(grad)
        self.prev_step.copy_(step)

    def _push(self, s: torch.Tensor, y: torch.Tensor, rho: torch.Tensor) -> None:
        """Append a pair as the newest; the oldest drops out. In place: the buffers never move."""
        for ring, new in ((self.s, s), (self.y, y), (self.rho, rho)):
            ring.copy_(torch.cat([ring[1:], new[None]]))


class BatchedAdam:
    """torch.optim.Adam (per-element state: samples never mix), with stopped samples held still."""

    def __init__(self, flat: torch.Tensor, lr: float):
        self.param = flat
        self.opt = torch.optim.Adam([flat], lr=lr)

    def step(self, x: torch.Tensor, grad: torch.Tensor, active: torch.Tensor) -> None:
        """x: (B, N), the parameter; grad: (B, N); active: (B, 1) float 0/1."""
        before = x.clone()
        self.param.grad = grad.view_as(self.param)
        self.opt.step()
        x.copy_(torch.where(active.bool(), x, before))
