"""How many frames or images one optimisation pass takes, and what happens when they do not fit.

One rule for video windows and for folder image batches:
  * --batch N, or auto: 1 off CUDA (batching gains nothing on the CPU); on CUDA, for video windows
    the fastest of a short timed trial, for images AUTO_CUDA_IMAGE_BATCH;
  * out of memory halves the batch for the rest of the job and runs the same items again, down to
    one; an item that does not fit alone fails with OutOfMemory. No item is dropped or run twice.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from .engine import pick_device
from .errors import ProcessingError
from .gatys import optimise
from .prepare import Prepared
from .progress import Callback, Message, ignore
from .settings import Settings

T = TypeVar("T")
R = TypeVar("R")

# Images per pass on CUDA when --batch is 0. For video frames the trial found batch 16 1.37x faster
# than batch 1 at 512x288 on an H200 and no gain at 1280x720 (docs/design.md); 8 is a middle
# choice, not measured for images.
AUTO_CUDA_IMAGE_BATCH = 8
TRIAL_BATCHES = (1, 2, 4, 8, 16)


class OutOfMemory(ProcessingError):
    """One item alone does not fit in the device's memory."""


@dataclass
class BatchLimit:
    """The most items per pass for one working size; halved on out of memory, for good."""

    size: int


def window_batch(prepared: Prepared, size: tuple[int, int], progress: Callback = ignore) -> int:
    """Video frames per window at working size (h, w): --batch N, or auto (see the module doc)."""
    if prepared.settings.batch > 0:
        return prepared.settings.batch
    if prepared.engine.device.type != "cuda":
        return 1
    return trial_batch(prepared, size, progress)


def image_batch(settings: Settings) -> int:
    """Images per pass: --batch N, or auto. Decided before the network is loaded, so that a folder
    rerun with nothing to do never loads it."""
    if settings.batch > 0:
        return settings.batch
    return AUTO_CUDA_IMAGE_BATCH if pick_device(settings.device).type == "cuda" else 1


def trial_batch(prepared: Prepared, size: tuple[int, int], progress: Callback) -> int:
    """The batch of TRIAL_BATCHES with the best items/s over 3 timed steps (after 2 of warm-up),
    stopping at the first that runs out of memory."""
    h, w = size
    engine, settings = prepared.engine, prepared.settings
    targets = prepared.styles.targets((h, w))
    best, best_rate, rates = 1, 0.0, []
    for b in TRIAL_BATCHES:
        images = torch.rand(b, 3, h, w, device=engine.device)
        try:
            optimise(engine, settings, images, images, targets, iterations=2)  # warm-up
            torch.cuda.synchronize(engine.device)
            t = time.perf_counter()
            optimise(engine, settings, images, images, targets, iterations=3)
            torch.cuda.synchronize(engine.device)
        except torch.OutOfMemoryError:
            break
        finally:
            del images
            torch.cuda.empty_cache()
        rate = b / (time.perf_counter() - t)
        rates.append(f"{b}: {rate:.1f}")
        if rate > best_rate:
            best, best_rate = b, rate
    progress(Message(f"batch {best} (trial frames/s by batch: {', '.join(rates)})"))
    return best


def free_device_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def in_batches(items: Sequence[T], limit: BatchLimit, run: Callable[[list[T]], R], *,
               device: torch.device, size: tuple[int, int], what: str, progress: Callback = ignore,
               ) -> Iterator[tuple[list[T], R | OutOfMemory]]:
    """Run items of working size (h, w), in order, through run() in passes of up to limit.size;
    yield (items, result) per pass.

    Out of memory halves limit.size and runs the same items again. An item that does not fit alone
    is yielded with an OutOfMemory error as its result, and the rest go on. A consumer that stops
    iterating starts no further pass. what: how an item is named in messages ("frame", "image").
    """
    label = f"{size[1]}x{size[0]}"
    i = 0
    while i < len(items):
        chunk = list(items[i:i + min(limit.size, len(items) - i)])
        try:
            result: R | OutOfMemory = run(chunk)
        except torch.OutOfMemoryError:
            free_device_memory(device)
            if len(chunk) > 1:
                limit.size = len(chunk) // 2
                progress(Message(f"out of memory: batch at {label} halved to {limit.size}, retried",
                                 level="warning", code="batch.halved"))
                continue
            result = OutOfMemory(f"one {label} {what} does not fit in {device} memory; try a smaller --size")
        yield chunk, result
        i += len(chunk)
