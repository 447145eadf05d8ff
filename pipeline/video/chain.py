"""The warm-start chain (Ruder, Dosovitskiy & Brox 2016): planned steps -> stylised frames.

Per step:
  * "full" / "scene cut": a coarse-to-fine optimisation from --init, as for an image, then
    settle_iterations at full size as a later frame gets them (no pop at frame 2);
  * "warm": each frame starts from the previous *stylised* frame warped into it by the flow, with
    the warp inpainted (`revealed`) where the forward-backward check distrusts it; --frame-iterations at full size;
    a temporal loss to the warped previous output, masked the same way. The warp is Lanczos and the
    loss holds the coarse scales (temporal_detail), so that the strokes stay sharp (docs/motion.md).
    A window of B frames (--batch B) is one batch, each frame tied to the anchor and to its neighbour in the window
    (docs/design.md says why this design over segment streams).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import flow
from ..batching import BatchLimit, OutOfMemory, in_batches
from ..color import luminance, recombine
from ..frames import initial_images, to_float, to_rgb, to_tensor
from ..gatys import Result, Temporal, coarse_to_fine, optimise, warp_batch
from ..prepare import Prepared
from ..progress import Callback, ignore
from .plan import Step, plan_steps

# Luma (0-1) added to both sides of follow_light's gain: about 13 of 255, the level under which
# a ratio of low-passed lumas is mostly the encoder's noise.
LIGHT_FLOOR = 0.05


@dataclass
class FrameResult:
    """One stylised frame: output (H, W, 3) float32 [0, 1], its loss, how it started ("full",
    "scene cut", "warm") and the optimiser iterations its pass ran."""

    output: np.ndarray
    loss: float
    how: str
    iterations: int


class Chain:
    """State carried from frame to frame: the previous input and output frames."""

    def __init__(self, prepared: Prepared):
        self.prepared = prepared
        self.engine, self.styles, self.settings = prepared.engine, prepared.styles, prepared.settings
        self.prev_input: np.ndarray | None = None  # (H, W, 3) uint8, as decoded (Step.inputs)
        self.prev_output: np.ndarray | None = None  # (H, W, 3) float32 [0, 1]

    @property
    def anchor(self) -> np.ndarray | None:
        """The input frame a next warm step is planned against (None: the chain starts afresh)."""
        return None if self.prev_output is None else self.prev_input

    def replay(self, frame: np.ndarray, saved: np.ndarray) -> None:
        """Resume: take a saved output (H, W, 3) uint8 as if it had just been computed."""
        self.prev_input, self.prev_output = frame, to_float(saved)

    def run_within(self, step: Step, limit: BatchLimit, progress: Callback = ignore) -> list[FrameResult]:
        """Stylise one planned step in passes of at most limit.size frames: out of memory halves
        the limit and runs the frames again (re-planned against the chain's anchor); a frame that
        does not fit alone raises batching.OutOfMemory. Never drops a frame."""

        h, w = step.frames[0].shape[:2]

        def run(frames: list[np.ndarray]) -> list[FrameResult]:
            if len(frames) == len(step.frames):
                return self.run(step)  # as planned: its flows came from the decode thread
            return [r for part in plan_steps(self.settings, self.anchor, frames, (h, w))
                    for r in self.run(part)]

        results: list[FrameResult] = []
        for _, done in in_batches(step.inputs, limit, run, device=self.engine.device, size=(h, w),
                                  what="frame", progress=progress):
            if isinstance(done, OutOfMemory):
                raise done
            results += done
        return results

    def run(self, step: Step) -> list[FrameResult]:
        """Stylise one planned step, in one pass."""
        if step.how == "warm":
            return self._warm(step)
        s = self.settings
        content = torch.cat([to_tensor(to_float(f)) for f in step.frames])
        result = coarse_to_fine(self.prepared, content, initial_images(s, content),
                         iterations=s.iterations, scales=s.scales)
        if min(s.settle_iterations, s.frame_iterations) and not s.independent:
            settled = self._settle_full(result, content)
            result = dataclasses.replace(settled, iterations=result.iterations + settled.iterations)
        return self._finish(step, result)

    def _settle_full(self, result: Result, content: torch.Tensor) -> Result:
        """End a chain's full optimisation (its first frame, a scene cut) as its later frames are
        made: settle_iterations (at most frame_iterations) more at full size from a fresh optimiser,
        held to itself by the temporal term as if it were its own previous frame.

        Coarse to fine with early stopping leaves the first frame where a fresh L-BFGS run at
        full size still moves it: frame 2, the first such run, repainted its strokes, a pop of
        many times the later pairs' flicker (docs/temporal.md). Run here, that move happens
        before the first frame is shown, not between frames 1 and 2."""
        s = self.settings
        h, w = content.shape[-2:]
        images, target = result.images, content
        if s.preserve_colors:
            images, target = luminance(images), luminance(content)
        ones = torch.ones(images.shape[0], 1, h, w)
        settled = optimise(self.engine, s, images, target, self.styles.targets((h, w)),
                           iterations=min(s.settle_iterations, s.frame_iterations),
                           temporal=Temporal(images, ones))
        if s.preserve_colors:
            settled.images = recombine(settled.images, content)
        return settled

    def _warm(self, step: Step) -> list[FrameResult]:
        """Window batching: frames t..t+B-1 each start from the last finished output (frame t-1)
        warped to them, with a temporal loss to that anchor and to their neighbour in the window."""
        s = self.settings
        h, w = step.frames[0].shape[:2]
        content = torch.cat([to_tensor(to_float(f)) for f in step.frames])
        warped_t = torch.cat([to_tensor(np.clip(flow.warp(self.prev_output, f, s.warp_interpolation), 0, 1))
                              for f in step.to_anchor])
        if s.follow_light == "gain":
            warped_t = (warped_t * self._light_gain(step) ** s.follow_light_share).clamp(0, 1)
        elif s.follow_light == "offset":
            warped_t = (warped_t + self._light_change(step)).clamp(0, 1)
        mask_t = torch.from_numpy(np.stack(step.anchor_mask))[:, None]
        init = mask_t * warped_t + (1 - mask_t) * self._revealed_start(step, warped_t, content)
        target = content
        if s.preserve_colors:
            warped_t, init, target = luminance(warped_t), luminance(init), luminance(content)
        temporal = Temporal(warped_t, mask_t,
                            torch.from_numpy(np.stack(step.to_neighbour)).permute(0, 3, 1, 2).contiguous(),
                            torch.from_numpy(np.stack(step.neighbour_mask))[:, None])
        result = optimise(self.engine, s, init, target, self.styles.targets((h, w)),
                          iterations=s.frame_iterations, temporal=temporal)
        if len(step.frames) > 1:
            self._settle_last(step, result, target)
        if s.preserve_colors:
            result.images = recombine(result.images, content)
        return self._finish(step, result)

    @staticmethod
    def _light_change(step: Step) -> torch.Tensor:
        """How much brighter each frame of the step is than the anchor's input brought to it by the
        flow, (B, 1, H, W): the difference of the low-passed lumas (ReCoNet, Huang et al. 2017)."""
        return torch.from_numpy(np.stack([now - then for now, then in step.light]))[:, None]

    @staticmethod
    def _light_gain(step: Step) -> torch.Tensor:
        """The same change as a gain, (B, 1, H, W) in [1/4, 4]: the ratio of the low-passed lumas.

        Where we depart from ReCoNet, which adds the luminance difference: light multiplies what it
        falls on, so the painting under less light is the painting times the gain, its dark strokes
        dimmed less than its bright ones, never below black. Added, a 0.7 dimming (realshort's
        frames at 96 px) overshot, 1.18 of the change, and the painting then drifted back 3% of it
        a frame (docs/motion.md). The caller raises the gain to follow_light_share. LIGHT_FLOOR
        keeps the ratio of near-black areas from amplifying their noise."""
        return torch.from_numpy(np.stack([np.clip((now + LIGHT_FLOOR) / (then + LIGHT_FLOOR), 0.25, 4.0)
                                          for now, then in step.light]))[:, None]

    def _revealed_start(self, step: Step, warped: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """What the pixels the warp cannot bring (disoccluded, entering the view) start from,
        (B, 3, H, W) in [0, 1]: --revealed content (Ruder et al.), warp (the warped output as it
        is: border smear, occluder texture) or inpaint (flow.fill_unreliable of the warped output)."""
        how = self.settings.revealed
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
        s = self.settings
        k = len(step.frames) - 1
        to_previous = torch.from_numpy(step.to_neighbour[k]).permute(2, 0, 1)[None].contiguous()
        warped = warp_batch(result.images[k - 1:k], to_previous)
        mask = torch.from_numpy(step.neighbour_mask[k])[None, None]
        h, w = target.shape[-2:]
        last = optimise(self.engine, s, result.images[k:], target[k:], self.styles.targets((h, w)),
                        iterations=max(1, s.frame_iterations // 2), temporal=Temporal(warped, mask))
        for mine, settled in ((result.images, last.images), (result.content, last.content),
                              (result.style, last.style), (result.total, last.total)):
            mine[k] = settled[0]

    def _finish(self, step: Step, result: Result) -> list[FrameResult]:
        outs = [to_rgb(image) for image in result.images]
        self.prev_input, self.prev_output = step.inputs[-1], outs[-1]
        return [FrameResult(out, float(loss), step.how, result.iterations)
                for out, loss in zip(outs, result.total)]

