"""The warm-start chain over a stream of frames (stylise_frames), and the estimate of a clip's time.

What a segment runs (segment.py), wherever it runs, and what the benchmarks run on frames in memory.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..batching import BatchLimit, window_batch
from ..estimate import trial, video_estimate
from ..frames import to_u8, video_size
from ..prepare import Prepared
from ..progress import Callback, Estimate, Message, ignore
from .chain import Chain, FrameResult
from .clip import Clip, scan
from .plan import End, Replay, produce
from .threads import Ahead


@dataclass
class Finished:
    """Frame `index` of the clip is done: its output (H, W, 3) uint8, and how it was made (None:
    replayed from the work folder); seconds: wall time of its pass, shared by its frames."""

    index: int
    frame: np.ndarray
    result: FrameResult | None
    seconds: float = 0.0


def stylise_frames(prepared: Prepared, frames: Iterable[np.ndarray], size: tuple[int, int], *,
                   saved: Mapping[int, Path | np.ndarray] | None = None, start: int = 0,
                   stop_at: int | None = None, overlap: bool = True, progress: Callback = ignore,
                   stop: Callable[[], bool] = lambda: False, batch: int = 0) -> Iterator[Finished | End]:
    """The chain over a stream of frames (H, W, 3) uint8 in clip order, at the working size (h, w)
    or decoded larger for the flow (frames.flow_source_size; the plan brings them down).

    Yields each frame as it is finished (saved ones replayed, not recomputed), then End. With
    overlap, decoding, flow and planning run one window ahead on a thread of their own. Frames
    before `start` are skipped and decoding stops at `stop_at`; stop() is looked at after each
    window; batch > 0 fixes the frames per window (else window_batch decides). This is what
    stylise_video runs, what a Ray worker runs on each segment, and what the benchmarks run.
    """
    engine = prepared.engine
    chain = Chain(prepared)
    limit = BatchLimit(batch or window_batch(prepared, size, progress))
    feed = Ahead(produce(prepared.settings, frames, saved or {}, lambda: limit.size, start=start,
                         stop_at=stop_at, size=size), threaded=overlap)
    try:
        for item in feed:
            if isinstance(item, End):
                yield item
                continue
            if isinstance(item, Message):
                progress(item)
                continue
            if isinstance(item, Replay):
                chain.replay(item.frame, item.saved)
                yield Finished(item.index, item.saved, None)
                continue
            indices = iter(item.indices)
            for step in item.steps:
                t0 = time.perf_counter()
                results = chain.run_within(step, limit, progress)
                engine.report(progress)  # e.g. a --compile fallback met inside the step
                seconds = (time.perf_counter() - t0) / len(results)
                for result, index in zip(results, indices):
                    yield Finished(index, to_u8(result.output), result, seconds)
            if stop():
                break
    finally:
        feed.close()


def estimate_video(prepared: Prepared, clip: Clip, *, done: int = 0,
                   scores: list[float] | None = None, devices: int = 1) -> Estimate:
    """How long the clip's remaining frames will take here: its frames and scene cuts counted by
    a thumbnail pass (or from `scores`, the pass's cut scores), times a timed trial on the first
    frame at the working size. `done` frames are already saved; `devices` share the work."""
    s = prepared.settings
    if scores is None:
        _, scores, _ = scan(clip)
    frames = len(scores) + 1
    cuts = sum(score > s.scene_cut_threshold for score in scores)
    h, w = video_size(clip.info.width, clip.info.height, s.size)
    reader = clip.frames((w, h))
    try:
        first = next(iter(reader))
    finally:
        reader.close()
    return video_estimate(s, frames, cuts, trial(prepared, (h, w), first), device=str(prepared.engine.device),
                          done=done, devices=devices)
