"""One segment, where the device is: decode its own frame range, stylise it, encode it.

This is what every executor runs (executors.py in this process or in local worker processes,
cluster/worker.py on a Ray actor): the worker seeks the input to the segment (the frame before it,
when the segment continues a chain), counts what it decodes against the plan, continues the chain
from the anchor, and encodes the segment's frames at the output size (delivery.py) with the job's
codec settings. Every segment is its own encode, so it starts with an IDR frame and a closed GOP,
and the join is a stream copy (media.video.VideoWriter.join).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ProcessingError
from ..frames import flow_source_size
from ..media.video import VideoWriter
from ..prepare import Prepared
from ..progress import Callback, FrameDone, Message, ignore
from .clip import Clip
from .delivery import Delivery
from .pieces import Piece, Segment
from .plan import End
from .stream import stylise_frames
from .threads import FrameSink
from .workdir import WorkDir


@dataclass(frozen=True, eq=False)  # compared by identity: the executors track the tasks in hand
class SegmentTask:
    """What a worker is sent: the segment, its piece, and the anchor (the output, (h, w, 3) uint8
    at the working size, of frame segment.first - 1; None for a piece's first segment)."""

    segment: Segment
    piece: Piece
    anchor: np.ndarray | None


@dataclass
class SegmentOutput:
    """What a worker returns: the segment's encoded file in the resume folder (None when it
    encodes no frame, or when it comes as `data`), the raw outputs of segment.raw_indices()
    ((h, w, 3) uint8), and per frame stylised here (index, seconds, loss); frames replayed from an
    interrupted run are not in `stylised`. data: the encoded segment's bytes from a worker that
    cannot write the resume folder (a Ray worker); the orchestrator writes them there."""

    segment: Segment
    file: Path | None
    raw: dict[int, np.ndarray]
    stylised: list[tuple[int, float, float]] = field(default_factory=list)
    data: bytes | None = None


def run_segment(prepared: Prepared, clip: Clip, task: SegmentTask, work: WorkDir, suffix: str, *,
                save_frames: bool = True, overlap: bool = True, batch: int = 0, progress: Callback = ignore,
                stop: Callable[[], bool] = lambda: False) -> SegmentOutput | None:
    """Stylise and encode one segment into work.segment_path(name, suffix); None when stop() ended
    it early (with save_frames, its finished frames are saved in `work` and a rerun replays them).

    save_frames: keep every finished frame as a PNG in `work` (a local worker: the frame-exact
    resume of a segment in progress); a Ray worker keeps none. progress gets FrameDone(index in
    the clip, None, seconds, loss) per frame stylised (lead-ins not counted), and the chain's
    messages. batch: frames per window, decided once per job by the caller (window_batch).
    """
    try:
        return _run(prepared, clip, task, work, suffix, save_frames, overlap, batch, progress, stop)
    except _Stopped:
        return None


class _Stopped(Exception):
    """Raised inside the writer's block to discard a segment that a stop request cut short."""


def _run(prepared: Prepared, clip: Clip, task: SegmentTask, work: WorkDir, suffix: str,
         save_frames: bool, overlap: bool, batch: int, progress: Callback, stop: Callable[[], bool]) -> SegmentOutput:
    seg, piece = task.segment, task.piece
    settings = prepared.settings
    origin = seg.first - (1 if task.anchor is not None else 0)  # decoding starts at the anchor's input
    saved: dict[int, Path | np.ndarray] = {0: task.anchor} if task.anchor is not None else {}
    if save_frames:
        for index in range(seg.first, seg.stop):
            path = work.lead_path(index) if index < piece.keep_from else work.frame_path(index)
            if path.is_file():
                saved[index - origin] = path
    h, w = work.size
    reader = clip.part(origin, seg.stop).frames(flow_source_size(clip.info.width, clip.info.height, (h, w),
                                                                  settings))
    delivery = Delivery(clip, settings, (h, w), seg.encode_to)
    out_h, out_w = delivery.size
    writer = (VideoWriter(work.segment_path(seg.name, suffix), out_w, out_h, clip.info.fps, crf=settings.crf,
                          codec=settings.codec) if seg.encoded else None)
    raw_wanted = set(seg.raw_indices())
    out = SegmentOutput(seg, writer.out_path if writer is not None else None, {})
    made = origin - 1  # the last frame of the clip handled so far
    with writer if writer is not None else contextlib.nullcontext():
        # The disk is checked at the first saved frame for the segment's PNGs (then dropped) and its encode.
        sink = FrameSink(work, writer, threaded=overlap, frames_left=max(seg.frames - len(saved) - 1, 0),
                         deliver=delivery)
        failed = True
        try:
            for item in stylise_frames(prepared, reader, (h, w), saved=saved, overlap=overlap,
                                       progress=progress, stop=stop, batch=batch):
                if isinstance(item, End):  # the reader has counted what it decoded: checked below
                    continue
                index = origin + item.index
                made = index
                if index < seg.first:
                    continue  # the anchor: replayed to start the chain, neither saved nor encoded
                sink.put(index, item.frame, save=save_frames and item.result is not None,
                         lead=index < piece.keep_from, encode=seg.encode_from <= index < seg.encode_to)
                if index in raw_wanted:
                    out.raw[index] = item.frame
                if item.result is not None and index >= piece.keep_from:  # a lead-in is extra work, not counted
                    if item.result.how == "scene cut":
                        progress(Message(f"scene cut at frame {index + 1}: full optimisation"))
                    out.stylised.append((index, item.seconds, item.result.loss))
                    progress(FrameDone(index, None, item.seconds, item.result.loss))
            failed = False
        finally:
            error = sink.close()  # finished frames are saved even when the segment fails
            delivery.close()
            if error is not None and not failed:
                raise error
        if made < seg.stop - 1:
            if stop():
                raise _Stopped  # inside the with block: the partial segment file is discarded
            raise ProcessingError(f"{clip.path}: decoded frames {seg.first + 1}-{made + 1} of a segment the scan "
                                  f"counted as {seg.first + 1}-{seg.stop}: the input does not decode the same twice")
    return out

