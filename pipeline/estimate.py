"""How long a job will take, said before its first frame: a short timed trial on the job's own
device at its working size, times the plan (full optimisations for the first frame and each scene
cut, warm-started iterations for the rest, images at their own sizes).

The trial runs batch 1: window batching on a GPU makes video faster than the estimate says. Early
stopping makes images and first frames faster too: their iterations are counted in full.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from . import flow
from .gatys import optimise, scale_sizes
from .polish import polish_tiles
from .prepare import Prepared
from .progress import Estimate
from .settings import Settings


@dataclass(frozen=True)
class Trial:
    """Measured on the device at one working size (h, w): seconds per optimiser iteration, and per
    frame for what a warm-started frame does besides (two optical flows)."""

    size: tuple[int, int]
    iteration: float
    frame_overhead: float

    def iteration_at(self, size: tuple[int, int]) -> float:
        """Seconds per iteration at another size: the convolutions' work grows with the pixels."""
        return self.iteration * (size[0] * size[1]) / (self.size[0] * self.size[1])


def trial(prepared: Prepared, size: tuple[int, int], frame: np.ndarray | None = None) -> Trial:
    """Time 2 iterations (after 1 of warm-up) at (h, w) on a picture of that size (a real frame
    when given: the optimiser's work does not depend on it, but flow timing does)."""
    h, w = size
    image = (torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255 if frame is not None
             else torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)))
    engine, settings = prepared.engine, prepared.settings
    targets = prepared.styles.targets((h, w))
    optimise(engine, settings, image, image, targets, iterations=1)
    _sync(engine.device)
    started = time.perf_counter()
    optimise(engine, settings, image, image, targets, iterations=2)
    _sync(engine.device)
    # optimise() also runs one objective without gradients at the end: about half an iteration.
    per_iteration = (time.perf_counter() - started) / 2.5
    overhead = 0.0
    if frame is not None:
        started = time.perf_counter()
        flow.compute_flow(frame, frame[:, ::-1].copy())
        overhead = 2 * (time.perf_counter() - started)  # backward flow and its check, per frame
    return Trial((h, w), per_iteration, overhead)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def full_seconds(settings: Settings, size: tuple[int, int], measured: Trial) -> float:
    """A full coarse-to-fine optimisation (an image, a first frame, a scene cut) at (h, w)."""
    return sum(settings.iterations * measured.iteration_at(level) for level in scale_sizes(size, settings.scales))


def polish_seconds(settings: Settings, working: tuple[int, int], output: tuple[int, int], measured: Trial) -> float:
    """--detail polish of a still painted at working (h, w), delivered at output (h, w): its
    iterations on every tile (none where the output is not larger, or another step is chosen)."""
    return sum(settings.polish_iterations * measured.iteration_at(tile[2:])
               for tile in polish_tiles(settings, working, output))


def first_frame_seconds(settings: Settings, size: tuple[int, int], measured: Trial) -> float:
    """A chain's full frame (its first, a scene cut): the full optimisation, then its settle
    iterations at full size (video/chain.py); an --independent frame has none."""
    settle_iterations = min(settings.settle_iterations, settings.frame_iterations)
    settle = 0 if settings.independent else settle_iterations * measured.iteration_at(size)
    return full_seconds(settings, size, measured) + settle


def warm_seconds(settings: Settings, measured: Trial) -> float:
    """A warm-started video frame at the trial's size."""
    return settings.frame_iterations * measured.iteration + measured.frame_overhead


def video_estimate(settings: Settings, frames: int, cuts: int, measured: Trial, *, device: str,
                   done: int = 0, devices: int = 1) -> Estimate:
    """frames in the clip, cuts scene cuts; done frames already saved (a resumed job: the chain's
    first frame is among them, and the cuts are spread evenly); devices share the frames."""
    left = frames - done
    full = frames if settings.independent else (1 if not done else 0) + round(cuts * left / max(frames, 1))
    seconds = (full * first_frame_seconds(settings, measured.size, measured)
               + (left - full) * warm_seconds(settings, measured)) / devices
    where = device if devices == 1 else f"{devices} devices"
    text = (f"{frames:,} frames, {cuts} scene cut{'s' * (cuts != 1)}: about {duration_text(seconds)} on "
            f"{where} ({seconds * devices / max(left, 1):.2g} s/frame measured)"
            + (f", {done} frames already done" if done else ""))
    return Estimate(text, seconds, left)


def folder_estimate(settings: Settings, images: list[tuple[tuple[int, int], tuple[int, int]]],
                    videos: list[tuple[tuple[int, int], int]], measured: Trial, device: str) -> Estimate:
    """images: the working and output (h, w) of each; videos: ((h, w), frames) of each, frames from
    the container (scene cuts not counted: each video's first frame is its one full optimisation)."""
    image_seconds = sum(full_seconds(settings, working, measured) + polish_seconds(settings, working, output, measured)
                        for working, output in images)
    frames = sum(n for _, n in videos)
    video_seconds = sum(first_frame_seconds(settings, size, measured)
                        + (n - 1) * (settings.frame_iterations * measured.iteration_at(size) + measured.frame_overhead)
                        for size, n in videos)
    seconds = image_seconds + video_seconds
    parts, rates = [], []
    if images:
        parts.append(f"{len(images):,} image{'s' * (len(images) != 1)}")
        rates.append(f"{image_seconds / len(images):.2g} s/image")
    if videos:
        parts.append(f"{len(videos)} video{'s' * (len(videos) != 1)} ({frames:,} frames)")
        rates.append(f"{video_seconds / max(frames, 1):.2g} s/frame")
    text = f"{', '.join(parts)}: about {duration_text(seconds)} on {device} ({', '.join(rates)} measured)"
    return Estimate(text, seconds, len(images) + len(videos))


def duration_text(seconds: float) -> str:
    """'40 s', '19 min', '5.2 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
