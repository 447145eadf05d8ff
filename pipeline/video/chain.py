"""The warm-start chain (Ruder, Dosovitskiy & Brox 2016): planned steps -> stylised frames.

Per step:
  * "full" / "scene cut": a coarse-to-fine optimisation from --init, as for an image;
  * "warm": each frame starts from the previous *stylised* frame warped into it by the flow, with the
    content where the forward-backward check distrusts the warp; frame_coarse_iterations at half
    size, then --frame-iterations at full size; a temporal loss to the warped previous output,
    masked the same way. A window of B frames (--batch B) is one batch, each frame tied to the
    anchor and to its neighbour in the window (docs/design.md says why this design over segment
    streams). What a warm frame costs, and the schedule chosen: docs/frame_cost.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import flow
from ..batching import BatchLimit, OutOfMemory, in_batches
from ..color import luminance, recombine
from ..engine import Engine
from ..frames import initial_images, to_float, to_rgb, to_tensor
from ..optimize import MIN_SCALE_SIDE, Result, Temporal, optimise, resize_batch, stylise, warp_batch
from ..optimizers import BatchedLBFGS
from ..progress import Callback, ignore
from ..style_targets import StyleSet
from .plan import Step, plan_steps


@dataclass
class FrameResult:
    """One stylised frame: output (H, W, 3) float32 [0, 1], its loss, how it started ("full",
    "scene cut", "warm") and the optimiser iterations its pass ran (at half size: coarse_iterations)."""

    output: np.ndarray
    loss: float
    how: str
    iterations: int
    coarse_iterations: int = 0


class Chain:
    """State carried from frame to frame: the previous input and output frames."""

    def __init__(self, engine: Engine, styles: StyleSet):
        self.engine = engine
        self.styles = styles
        self.prev_input: np.ndarray | None = None  # (H, W, 3) uint8
        self.prev_output: np.ndarray | None = None  # (H, W, 3) float32 [0, 1]
        self.prev_loss: float | None = None  # the last warm frame's final loss (frame_stop)
        self.history: BatchedLBFGS | None = None  # the last warm pass's optimiser (frame_history)

    @property
    def anchor(self) -> np.ndarray | None:
        """The input frame a next warm step is planned against (None: the chain starts afresh)."""
        return None if self.prev_output is None else self.prev_input

    def replay(self, frame: np.ndarray, saved: np.ndarray) -> None:
        """Resume: take a saved output (H, W, 3) uint8 as if it had just been computed."""
        self.prev_input, self.prev_output = frame, to_float(saved)
        self.prev_loss, self.history = None, None

    def run_within(self, step: Step, limit: BatchLimit, progress: Callback = ignore) -> list[FrameResult]:
        """Stylise one planned step in passes of at most limit.size frames: out of memory halves
        the limit and runs the frames again (re-planned against the chain's anchor); a frame that
        does not fit alone raises batching.OutOfMemory. Never drops a frame."""

        def run(frames: list[np.ndarray]) -> list[FrameResult]:
            if len(frames) == len(step.frames):
                return self.run(step)  # as planned: its flows came from the decode thread
            return [r for part in plan_steps(self.engine.settings, self.anchor, frames) for r in self.run(part)]

        h, w = step.frames[0].shape[:2]
        results: list[FrameResult] = []
        for _, done in in_batches(step.frames, limit, run, device=self.engine.device, size=(h, w),
                                  what="frame", progress=progress):
            if isinstance(done, OutOfMemory):
                raise done
            results += done
        return results

    def run(self, step: Step) -> list[FrameResult]:
        """Stylise one planned step, in one pass."""
        if step.how == "warm":
            return self._warm(step)
        s = self.engine.settings
        self.prev_loss, self.history = None, None  # a new chain: nothing to carry over
        content = torch.cat([to_tensor(to_float(f)) for f in step.frames])
        result = stylise(self.engine, self.styles, content, initial_images(s, content),
                         iterations=s.iterations, scales=s.scales)
        return self._finish(step, result)

    def _warm(self, step: Step) -> list[FrameResult]:
        """Window batching: frames t..t+B-1 each start from the last finished output (frame t-1)
        warped to them, with a temporal loss to that anchor and to their neighbour in the window."""
        s = self.engine.settings
        h, w = step.frames[0].shape[:2]
        content = torch.cat([to_tensor(to_float(f)) for f in step.frames])
        warped_t = torch.cat([to_tensor(flow.warp(self.prev_output, f)) for f in step.to_anchor])
        mask_t = torch.from_numpy(np.stack(step.anchor_mask))[:, None]
        init = mask_t * warped_t + (1 - mask_t) * self._revealed_start(step, warped_t, content)
        target = content
        if s.preserve_colors:
            warped_t, init, target = luminance(warped_t), luminance(init), luminance(content)
        temporal = Temporal(warped_t, mask_t,
                            torch.from_numpy(np.stack(step.to_neighbour)).permute(0, 3, 1, 2).contiguous(),
                            torch.from_numpy(np.stack(step.neighbour_mask))[:, None])
        coarse_iterations = 0
        if s.frame_coarse_iterations:
            init, coarse_iterations = self._coarse_pass(init, target, temporal)
        # frame_stop: the previous warm frame's converged loss, a little above, is this frame's goal
        # (the problem barely changes between neighbours); a full frame before it has no temporal
        # term, so its loss is no goal.
        stop_below = (torch.full((len(step.frames),), self.prev_loss * (1 + s.frame_stop))
                      if s.frame_stop > 0 and self.prev_loss is not None else None)
        result = optimise(self.engine, init, target, self.styles.targets((h, w)),
                          iterations=s.frame_iterations, temporal=temporal,
                          history=self.history if s.frame_history else None, stop_below=stop_below)
        if s.frame_history and isinstance(result.optimizer, BatchedLBFGS):
            self.history = result.optimizer
        if len(step.frames) > 1:
            self._settle_last(step, result, target)
        self.prev_loss = float(result.total[-1])
        if s.preserve_colors:
            result.images = recombine(result.images, content)
        return self._finish(step, result, coarse_iterations)

    def _coarse_pass(self, init: torch.Tensor, target: torch.Tensor,
                     temporal: Temporal) -> tuple[torch.Tensor, int]:
        """frame_coarse_iterations at half size (a quarter of the convolution work each); returns
        the full-size init (B, 3, H, W) in [0, 1] with the half-size correction added, and the
        iterations run.

        Coarse-to-fine inside a warm frame. Unlike an image's levels, where each level starts from
        the coarser result upsampled, only the *change* the half-size pass made goes up: the warped
        previous output keeps its full-size brush strokes, which an upsampled half-size image would
        blur into a frame that then needs many full-size iterations to repaint. Measured worse than
        as many full-size iterations for the same work (docs/frame_cost.md: half-size style
        statistics are another scale's); off in every preset, kept so that table can be rerun."""
        s = self.engine.settings
        h, w = init.shape[-2:]
        half = (max(1, round(h / 2)), max(1, round(w / 2)))
        if max(half) < MIN_SCALE_SIDE or min(half) < MIN_SCALE_SIDE // 2:
            # Too small for relu5_1 (as image levels): the same work at full size instead.
            done = optimise(self.engine, init, target, self.styles.targets((h, w)),
                            iterations=max(1, s.frame_coarse_iterations // 4), temporal=temporal)
            return done.images, 0
        area = lambda t: None if t is None else F.interpolate(t, size=half, mode="area")  # noqa: E731
        neighbour_flow = None
        if temporal.neighbour_flow is not None:  # pixels: halve the vectors with the grid
            neighbour_flow = area(temporal.neighbour_flow) * torch.tensor([half[1] / w, half[0] / h]).view(1, 2, 1, 1)
        coarse_temporal = Temporal(area(temporal.warped_prev), area(temporal.mask), neighbour_flow,
                                   area(temporal.neighbour_mask))
        coarse_init = resize_batch(init, half)
        coarse = optimise(self.engine, coarse_init, resize_batch(target, half), self.styles.targets(half),
                          iterations=s.frame_coarse_iterations, temporal=coarse_temporal)
        change = F.interpolate(coarse.images - coarse_init, size=(h, w), mode="bilinear", align_corners=False)
        return (init + change).clamp(0, 1), coarse.iterations

    def _revealed_start(self, step: Step, warped: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """What the pixels the warp cannot bring (disoccluded, entering the view) start from,
        (B, 3, H, W) in [0, 1]: --revealed content (Ruder et al.), warp (the warped output as it
        is: border smear, occluder texture) or inpaint (flow.fill_unreliable of the warped output)."""
        how = self.engine.settings.revealed
        if how == "content":
            return content
        if how == "warp":
            return warped
        return torch.cat([to_tensor(flow.fill_unreliable(to_rgb(w), m))
                          for w, m in zip(warped, step.anchor_mask)])

    def _settle_last(self, step: Step, result: Result, target: torch.Tensor) -> None:
        """Refine the window's last frame alone, held to its finished neighbour, in place.

        It is the next window's anchor, and it started from a warp over the whole window (wider
        newly revealed strips, which start from the content), so after the window it is the least
        settled frame, and the next window's first frame moved away from it. frame_iterations / 2
        more iterations on this one frame, with the temporal loss to frame k-1's output as in the
        sequential chain, settle it (window boundaries measured in docs/design.md)."""
        s = self.engine.settings
        k = len(step.frames) - 1
        to_previous = torch.from_numpy(step.to_neighbour[k]).permute(2, 0, 1)[None].contiguous()
        warped = warp_batch(result.images[k - 1:k], to_previous)
        mask = torch.from_numpy(step.neighbour_mask[k])[None, None]
        h, w = target.shape[-2:]
        last = optimise(self.engine, result.images[k:], target[k:], self.styles.targets((h, w)),
                        iterations=max(1, s.frame_iterations // 2), temporal=Temporal(warped, mask))
        for mine, settled in ((result.images, last.images), (result.content, last.content),
                              (result.style, last.style), (result.total, last.total)):
            mine[k] = settled[0]

    def _finish(self, step: Step, result: Result, coarse_iterations: int = 0) -> list[FrameResult]:
        outs = [to_rgb(image) for image in result.images]
        self.prev_input, self.prev_output = step.frames[-1], outs[-1]
        return [FrameResult(out, float(loss), step.how, result.iterations, coarse_iterations)
                for out, loss in zip(outs, result.total)]
