"""Stylise still images: one file, a batch of pictures that share a working size, or a unit of
pictures of any sizes (stylise_unit: what a folder job's unit, a Ray worker's call and a preview
sheet each run)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .batching import BatchLimit, OutOfMemory, in_batches
from .errors import UsageError
from .frames import at_working_size, initial_images, to_rgb, to_tensor
from .gatys import Result, coarse_to_fine
from .media.images import Picture, read_image, working_size, write_image
from .polish import deliver_still
from .prepare import Prepared
from .progress import Callback, Message, ignore
from .report.summary import JobSummary


@dataclass
class ImageOutcome:
    output: Path
    content_loss: float  # normalised, unweighted (see losses.py)
    style_loss: float
    iterations: int  # at the finest scale
    seconds: float
    summary: JobSummary | None = None  # with a report: the job's summary of one record (report/)


def stylise_pictures(prepared: Prepared, pictures: list[Picture],
                     progress: Callback = ignore) -> tuple[list[Picture], Result]:
    """Stylise pictures of one working size as one batch; alpha and bit depth are carried over.

    pictures: B pictures whose sizes all fit --size to the same (h, w).  Returns B pictures of
    (h, w) and the batch's Result (per-sample losses of shape (B,)).
    """
    s, styles = prepared.settings, prepared.styles
    size = working_size(pictures[0].size, s.size)
    if any(working_size(p.size, s.size) != size for p in pictures):
        raise UsageError("a batch must share one working size")
    pictures = [at_working_size(p, s.size) for p in pictures]  # no copy for those already there
    content = torch.cat([to_tensor(p.rgb) for p in pictures])
    computed_before = styles.computed
    result = coarse_to_fine(prepared, content, initial_images(s, content),
                     iterations=s.iterations, scales=s.scales, progress=progress)
    fresh = styles.computed - computed_before
    progress(Message("style targets: computed" if fresh else "style targets: cached",
                     code="style_targets.computed" if fresh else "style_targets.cached"))
    out = [Picture(to_rgb(image), picture.alpha, picture.bit_depth, False)
           for picture, image in zip(pictures, result.images)]
    return out, result


def stylise_file(prepared: Prepared, input_path: Path, output_path: Path, *,
                 progress: Callback = ignore) -> ImageOutcome:
    """Read, stylise (at the working size) and atomically write one image at the output size
    (deliver.py; the caller has checked the output path)."""
    started = time.perf_counter()
    picture = read_image(input_path)
    (styled,), result = stylise_pictures(prepared, [picture], progress)
    write_image(output_path, deliver_still(prepared, styled, picture, progress))
    return ImageOutcome(output_path, float(result.content[0]), float(result.style[0]),
                        result.iterations, time.perf_counter() - started)


@dataclass
class Pass:
    """One optimisation pass of a unit: which of its pictures (indices into those given) and what
    came of them: their stylised pictures and losses, or the error that failed them all (an
    OutOfMemory: one picture alone does not fit). seconds: the pass's time per picture."""

    members: list[int]
    styled: list[Picture] | BaseException
    losses: list[float]
    seconds: float


def stylise_unit(prepared: Prepared, pictures: list[Picture], limits: dict[tuple[int, int], BatchLimit],
                 batch: int, progress: Callback = ignore) -> Iterator[Pass]:
    """Group pictures by working size (in the order first seen), stylise each group in passes of up
    to its size's limit (limits[size], made at `batch` the first time; halved on out of memory, for
    good: batching.in_batches), and yield each pass. A pass that fails otherwise fails its pictures
    alone. The consumer may stop between passes (a stop request): no further pass starts."""
    groups: dict[tuple[int, int], list[int]] = {}
    for k, picture in enumerate(pictures):
        groups.setdefault(working_size(picture.size, prepared.settings.size), []).append(k)
    for size, members in groups.items():
        limit = limits.setdefault(size, BatchLimit(batch))

        def run(chunk: list[int], size: tuple[int, int] = size) -> Pass:
            if len(chunk) > 1:
                progress(Message(f"batch of {len(chunk)} images at {size[1]}x{size[0]}", code="batch.images",
                                 fields={"images": len(chunk), "width": size[1], "height": size[0]}))
            t0 = time.perf_counter()
            try:
                styled, result = stylise_pictures(prepared, [pictures[k] for k in chunk], progress)
            except torch.OutOfMemoryError:
                raise  # in_batches halves the pass
            except Exception as e:  # noqa: BLE001 - the pass failed for its pictures; the unit goes on
                return Pass(chunk, e, [], (time.perf_counter() - t0) / len(chunk))
            return Pass(chunk, styled, result.total.tolist(), (time.perf_counter() - t0) / len(chunk))

        for chunk, outcome in in_batches(members, limit, run, device=prepared.engine.device, size=size, what="image",
                                         progress=progress):
            yield Pass(chunk, outcome, [], 0.0) if isinstance(outcome, OutOfMemory) else outcome
