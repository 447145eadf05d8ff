"""One clip in this process: decode -> plan -> chain -> save + encode, resumable.

Every finished frame is saved (PNG, lossless) in the work folder beside the output, so a rerun after
Ctrl-C, SIGTERM or kill -9 replays the saved frames into a fresh encoder and goes on from the last.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..batching import BatchLimit, window_batch
from ..engine import Engine
from ..errors import Interrupted
from ..estimate import trial, video_estimate
from ..frames import flow_source_size, to_u8, video_size
from ..media.video import TruncatedVideoError, VideoWriter
from ..progress import NEVER_STOP, Callback, Estimate, FrameDone, Message, StopRequest, ignore
from ..report.summary import JobSummary
from ..settings import Settings
from ..style_targets import StyleSet
from .chain import Chain, FrameResult
from .clip import Clip, open_clip, scan
from .plan import End, Replay, produce
from .threads import Ahead, FrameSink
from .workdir import WorkDir, open_work


@dataclass
class VideoOutcome:
    output: Path
    frames: int
    resumed_from: int  # frames taken from an earlier, interrupted run
    seconds: float
    workers: tuple[str, ...] = ()  # --engine ray: the workers (host:pid) that made its frames
    nodes: tuple[str, ...] = ()  # and their nodes
    retries: int = 0  # chunks run again after their worker was lost
    summary: JobSummary | None = None  # with a report: the job's summary of one record (report/)


@dataclass
class Finished:
    """Frame `index` of the clip is done: its output (H, W, 3) uint8, and how it was made (None:
    replayed from the work folder); seconds: wall time of its pass, shared by its frames."""

    index: int
    frame: np.ndarray
    result: FrameResult | None
    seconds: float = 0.0


def stylise_frames(engine: Engine, styles: StyleSet, frames: Iterable[np.ndarray], size: tuple[int, int], *,
                   saved: Mapping[int, Path | np.ndarray] | None = None, start: int = 0,
                   stop_at: int | None = None, overlap: bool = True, progress: Callback = ignore,
                   stop: Callable[[], bool] = lambda: False, batch: int = 0) -> Iterator[Finished | End]:
    """The chain over a stream of frames (H, W, 3) uint8 in clip order, at the working size (h, w)
    or decoded larger for the flow (frames.flow_source_size; the plan brings them down).

    Yields each frame as it is finished (saved ones replayed, not recomputed), then End. With
    overlap, decoding, flow and planning run one window ahead on a thread of their own. Frames
    before `start` are skipped and decoding stops at `stop_at`; stop() is looked at after each
    window; batch > 0 fixes the frames per window (else window_batch decides). This is what
    stylise_video runs, what a Ray worker runs on each chunk, and what the benchmarks run.
    """
    chain = Chain(engine, styles)
    limit = BatchLimit(batch or window_batch(engine, styles, size, progress))
    feed = Ahead(produce(engine.settings, frames, saved or {}, lambda: limit.size, start=start,
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


def render(engine: Engine, styles: StyleSet, clip: Clip, work: WorkDir, writer: VideoWriter | None, *,
           start: int = 0, keep_from: int = 0, stop_at: int | None = None, overlap: bool = True,
           progress: Callback = ignore, stop: Callable[[], bool] = lambda: False) -> End:
    """Stylise frames start..stop_at-1 of a clip into the work folder (and the writer, if given).

    Frames start..keep_from-1 are a --devices lead-in: stylised to start the chain and saved apart
    (the previous worker owns them). Saving and encoding run behind the optimisation on a thread
    (overlap). Returns how the input ended.
    """
    h, w = work.size
    saved: dict[int, Path | np.ndarray] = {i: work.frame_path(i) for i in work.saved_indices() if i >= keep_from}
    saved.update({i: work.lead_path(i) for i in range(start, keep_from) if work.lead_path(i).is_file()})
    total = max(clip.frame_count, 1) if stop_at is None else stop_at
    sink = FrameSink(work, writer, threaded=overlap, frames_left=max(clip.frame_count - len(saved) - 1, 0))
    frames = clip.frames(flow_source_size(clip.info.width, clip.info.height, (h, w), engine.settings))
    end, failed = End(0), True
    try:
        with contextlib.closing(stylise_frames(engine, styles, frames, (h, w), saved=saved, start=start,
                                               stop_at=stop_at, overlap=overlap, progress=progress,
                                               stop=stop)) as finished:
            for item in finished:
                if isinstance(item, End):
                    end = item
                    continue
                sink.put(item.index, item.frame, save=item.result is not None, lead=item.index < keep_from)
                if item.result is None:
                    continue
                if item.result.how == "scene cut":
                    progress(Message(f"scene cut at frame {item.index + 1}: full optimisation"))
                progress(FrameDone(item.index, max(total, item.index + 1), item.seconds, item.result.loss))
        failed = False
    finally:
        error = sink.close()  # finished frames are saved even when this job fails
        if error is not None and not failed:
            raise error
    return end


def open_writer(output_path: Path, clip: Clip, work: WorkDir, settings: Settings,
                comment: str | None = None) -> VideoWriter:
    """The encoder of the output: the work folder's frame size, the input's exact rate, and the
    input's sound from where the clip starts; comment: the output's `comment` tag (a folder job's
    record of the output's origin)."""
    h, w = work.size
    return VideoWriter(output_path, w, h, clip.info.fps, audio_from=clip.path if clip.info.has_audio else None,
                       audio_start=clip.audio_start, crf=settings.crf, codec=settings.codec, comment=comment)


def finish(input_path: Path, output_path: Path, work: WorkDir, *, keep_frames: bool, frames: int,
           truncated: TruncatedVideoError | None) -> None:
    """After the output is in place: drop the resume folder, and report a truncated input (its
    decodable frames were stylised) as an error."""
    if not keep_frames:
        work.remove()
    if truncated is not None:
        raise TruncatedVideoError(input_path, f"input is truncated or damaged: stylised the {frames} "
                                              f"decodable frames into {output_path}", frames_read=frames)


def estimate_video(engine: Engine, styles: StyleSet, clip: Clip, *, done: int = 0,
                   scores: list[float] | None = None, devices: int = 1) -> Estimate:
    """How long the clip's remaining frames will take here: its frames and scene cuts counted by
    a thumbnail pass (or from `scores`, the pass's cut scores), times a timed trial on the first
    frame at the working size. `done` frames are already saved; `devices` share the work."""
    s = engine.settings
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
    return video_estimate(s, frames, cuts, trial(engine, styles, (h, w), first), device=str(engine.device),
                          done=done, devices=devices)


def stylise_video(engine: Engine, styles: StyleSet, source: Clip | Path, output_path: Path, *,
                  keep_frames: bool = False, progress: Callback = ignore, stop: StopRequest = NEVER_STOP,
                  overlap: bool = True, comment: str | None = None) -> VideoOutcome:
    """Stylise a video file, or the part of it a Clip names, into output_path (same frames, frame
    rate and audio); the caller has checked the output path. overlap=False runs decoding, flow,
    saving and encoding in line with the optimisation (the baseline of bench/pipeline.py);
    comment: the output's `comment` tag."""
    started = time.perf_counter()
    s = engine.settings
    clip = source if isinstance(source, Clip) else open_clip(source)
    work, resumed = open_work(clip, output_path, s, progress)
    progress(estimate_video(engine, styles, clip, done=resumed))
    with open_writer(output_path, clip, work, s, comment) as writer:
        end = render(engine, styles, clip, work, writer, overlap=overlap, progress=progress,
                     stop=lambda: bool(stop))
        if stop:
            raise Interrupted(stop.signum)  # inside the with block: the partial output is discarded
    finish(clip.path, output_path, work, keep_frames=keep_frames, frames=end.frames_read,
           truncated=end.truncated)
    return VideoOutcome(output_path, end.frames_read, resumed, time.perf_counter() - started)
