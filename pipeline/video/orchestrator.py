"""One clip, on any executor: lay out, dispatch, store, stitch. The one orchestrator of a video.

* Lay out (pieces.py): the exact frame count and scene cuts from a fast thumbnail decode (never the
  container's count; the executor's scan: here in one decode, on Ray split over the workers),
  then pieces (parallel chains) and their segments.
* Dispatch: each free worker gets the next segment of a piece already started, else of the piece
  with the most frames left (longest first, so no worker holds the tail alone); a piece has one
  segment in flight at a time, carrying its anchor (the output of the frame before it).
* Store: each returned segment is recorded in the resume folder (segments.json: frames, bytes,
  sha256), with the raw frames a seam or the next segment's anchor needs; the frames a stored
  segment holds are dropped, so the folder stays flat in clip length. Seams (a piece led into from
  inside a shot) are cross-faded and encoded as short segments of their own as soon as both sides
  are in.
* Stitch: the parts are joined in clip order by a stream copy, and the input's sound is muxed once,
  cut to the clip's range. Per frame, this process does nothing but count.

A rerun resumes: stored segments are never redone, and a segment that a local worker left in
progress goes on from its last saved frame (run_segment).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import Interrupted, ProcessingError
from ..files import atomic_write_bytes
from ..media.video import TruncatedVideoError, VideoWriter
from ..prepare import Prepared
from ..progress import NEVER_STOP, Callback, FrameDone, Message, StopRequest, ignore
from ..report.summary import JobSummary
from ..settings import Settings
from .clip import Clip, open_clip
from .contract import Executor
from .delivery import Delivery, output_frame_size
from .executors import InProcess
from .pieces import ClipLayout, Seam, Segment, cross_fade, lay_out_clip
from .segment import SegmentOutput, SegmentTask
from .workdir import WorkDir, open_work


@dataclass
class VideoOutcome:
    output: Path
    frames: int
    resumed_from: int  # frames taken from an earlier, interrupted run
    seconds: float
    workers: tuple[str, ...] = ()  # --engine ray: the workers (host:pid) that made its frames
    nodes: tuple[str, ...] = ()  # and their nodes
    retries: int = 0  # segments run again after their worker was lost
    summary: JobSummary | None = None  # with a report: the job's summary of one record (report/)


@dataclass
class PieceState:
    """Where one piece stands: its next segment to run (an index into its segments), that
    segment's anchor, and whether it is in flight."""

    next: int = 0
    anchor: np.ndarray | None = None
    in_flight: bool = False


@dataclass
class Clipwork:
    """The orchestrator's state of one clip: the layout, the stored parts, each piece's progress,
    and the count of owned frames finished (lead-ins are extra work, not counted)."""

    layout: ClipLayout
    work: WorkDir
    suffix: str
    settings: Settings
    clip: Clip
    done: dict[str, dict] = field(default_factory=dict)
    pieces: list[PieceState] = field(default_factory=list)
    finished: set[int] = field(default_factory=set)
    keep_frames: bool = False  # --keep-frames: a stored segment's frames stay in the folder too

    @property
    def fps(self) -> Fraction:
        return self.clip.info.fps

    @property
    def encoding(self) -> str:
        """What a stored segment's encoding must match to be taken."""
        return f"{self.settings.codec} crf {self.settings.crf}"

    def remaining(self, number: int) -> int:
        segments = self.layout.segments[number]
        state = self.pieces[number]
        return sum(s.frames for s in segments[state.next:])


def _resume(state: Clipwork) -> None:
    """Take the parts an earlier run stored: per piece the segments done in order (a gap redoes
    from there), as far as the saved frames they leave for later are there: a seam's sides until
    the seam is encoded, and the anchor of a half-done piece (a missing one redoes from there)."""
    layout, work = state.layout, state.work
    done = work.segments_done(state.encoding)
    for seam in layout.seams:
        if seam.name in done and done[seam.name].get("span") == [seam.first, seam.stop]:
            state.done[seam.name] = done[seam.name]
    pending = [(i, lead) for seam in layout.seams if seam.name not in state.done
               for i in range(seam.first, seam.stop) for lead in (False, True)]
    state.pieces = [PieceState() for _ in layout.pieces]
    for number, segments in enumerate(layout.segments):
        piece, taken = layout.pieces[number], 0
        for segment in segments:
            record = done.get(segment.name)
            sides = [(i, lead) for i, lead in pending if segment.first <= i < segment.stop
                     and lead == (i < piece.keep_from) and i in segment.raw_indices()]
            if record is None or record.get("span") != [segment.first, segment.stop] or not all(
                    work.has(i, lead=lead) for i, lead in sides):
                break
            taken += 1
        while 0 < taken < len(segments) and not work.has(segments[taken - 1].stop - 1,
                                                          lead=segments[taken - 1].stop - 1 < piece.keep_from):
            taken -= 1  # the anchor is gone (removed by hand): redo from the last one there
        current = state.pieces[number]
        current.next = taken
        for segment in segments[:taken]:
            state.done[segment.name] = done[segment.name]
            state.finished.update(range(max(segment.first, piece.keep_from), segment.stop))
        if 0 < taken < len(segments):  # a piece half done: its next segment's anchor
            last = segments[taken - 1].stop - 1
            current.anchor = work.load(last, lead=last < piece.keep_from)
    state.finished.update(work.saved_indices())  # frames a local worker saved within a segment in progress


def _needed(state: Clipwork) -> set[tuple[int, bool]]:
    """The saved frames (index, lead) still to be read: each half-done piece's anchor (a rerun's
    start) and both sides of every seam not yet encoded. Any other saved frame is dropped once its
    segment is stored, so the folder stays flat in clip length."""
    needed = set()
    for number, current in enumerate(state.pieces):
        segments = state.layout.segments[number]
        if 0 < current.next < len(segments):
            last = segments[current.next - 1].stop - 1
            needed.add((last, last < state.layout.pieces[number].keep_from))
    for seam in state.layout.seams:
        if seam.name not in state.done:
            needed.update((i, lead) for i in range(seam.first, seam.stop) for lead in (False, True))
    return needed


def _forget(state: Clipwork, indices) -> None:
    """Drop the saved frames among `indices` (both forms, lead-in or not) that are not _needed."""
    if state.keep_frames:
        return
    indices, needed = set(indices), _needed(state)
    for index, lead in state.work.saved_frames():
        if index in indices and (index, lead) not in needed:
            state.work.forget([index], lead=lead)


def _dispatch(state: Clipwork, executor: Executor) -> None:
    """Hand each free worker the next segment of a piece: a piece already started first (so that
    no more pieces are half done, each holding an anchor, than there are workers), then the piece
    with the most frames left (so that the longest start early and none is left for the end)."""
    while executor.free > 0:
        ready = [n for n, p in enumerate(state.pieces)
                 if not p.in_flight and p.next < len(state.layout.segments[n])]
        if not ready:
            return
        number = max(ready, key=lambda n: (state.pieces[n].next > 0, state.remaining(n)))
        current = state.pieces[number]
        current.in_flight = True
        executor.submit(SegmentTask(state.layout.segments[number][current.next], state.layout.pieces[number],
                                    current.anchor))


def _store(state: Clipwork, output: SegmentOutput) -> None:
    """Record a finished segment and keep its raw frames, then drop the saved frames no longer
    needed: the segment's own (a local worker saved them all), and the previous segment's anchor.
    The new anchor is written before the record, so a crash between the two costs nothing."""
    segment, work = output.segment, state.work
    piece = state.layout.pieces[segment.piece]
    if output.data is not None:  # sent as bytes (a Ray worker): written here, as every stored part is
        output.file = work.segment_path(segment.name, state.suffix)
        atomic_write_bytes(output.file, output.data)
        output.data = None
    for index, frame in output.raw.items():
        lead = index < piece.keep_from
        if not work.has(index, lead=lead):  # a local worker saved its frames already
            work.save_raw(index, frame, lead=lead)
    work.record_segment(segment.name, (segment.first, segment.stop), output.file, segment.encoded, state.encoding,
                        state.done)
    current = state.pieces[segment.piece]
    current.next, current.in_flight = segment.number + 1, False
    finished = current.next == len(state.layout.segments[segment.piece])
    current.anchor = None if finished else output.raw[segment.stop - 1]
    earlier = state.layout.segments[segment.piece][segment.number - 1].stop - 1 if segment.number else segment.first
    _forget(state, [*range(segment.first, segment.stop), earlier])
    _join_seams(state)


def _join_seams(state: Clipwork) -> None:
    """Encode every seam whose two sides are both in: the previous piece's frames, cross-faded
    into the lead-in of the piece after it."""
    work = state.work
    for seam in state.layout.seams:
        indices = range(seam.first, seam.stop)
        if seam.name in state.done or not all(work.has(i) and work.has(i, lead=True) for i in indices):
            continue
        piece = state.layout.pieces[seam.piece]
        path = work.segment_path(seam.name, state.suffix)
        delivery = Delivery(state.clip, state.settings, work.size, seam.stop)
        h, w = delivery.size
        try:
            with VideoWriter(path, w, h, state.fps, crf=state.settings.crf, codec=state.settings.codec) as writer:
                for i in indices:
                    writer.write(delivery(i, cross_fade(work.load(i), work.load(i, lead=True), piece, i)))
        finally:
            delivery.close()
        work.record_segment(seam.name, (seam.first, seam.stop), path, len(indices), state.encoding, state.done)
        _forget(state, indices)


def stylise_clip(executor: Executor, settings: Settings, source: Clip | Path, output_path: Path, *,
                 keep_frames: bool = False, progress: Callback = ignore, stop: StopRequest = NEVER_STOP,
                 comment: str | None = None) -> VideoOutcome:
    """Stylise a video (or the part a Clip names) into output_path on `executor` (executors.py:
    InProcess, Devices; cluster/video.py: on Ray): same frames, frame rate and sound. The caller
    has checked the output path. keep_frames: keep the work folder, every frame in it; comment: the
    output's `comment` tag."""
    started = time.perf_counter()
    clip = source if isinstance(source, Clip) else open_clip(source)
    work = open_work(clip, output_path, settings, progress)
    progress(Message("counting frames and finding scene cuts (a fast decode at thumbnail size)"))
    frames, scores, truncated = executor.scan(clip, work, progress)
    layout = lay_out_clip(frames, executor.workers, scores, settings.scene_cut_threshold, settings.segment_frames)
    state = Clipwork(layout, work, output_path.suffix, settings, clip, keep_frames=keep_frames)
    _resume(state)
    resumed = len(state.finished)
    _announce(state, executor, clip, scores, progress)
    parts = layout.parts()
    try:
        _run(state, executor, clip, parts, progress, stop)
    except KeyboardInterrupt:  # a second Ctrl-C: abort now, without waiting for the frames in hand
        executor.kill()
        raise
    finally:
        executor.close()
    _stitch(state, clip, output_path, settings, comment, parts)
    if not keep_frames:
        work.remove()
    if truncated is not None:
        raise TruncatedVideoError(clip.path, f"input is truncated or damaged: stylised the {frames} "
                                             f"decodable frames into {output_path}", frames_read=frames)
    return VideoOutcome(output_path, frames, resumed, time.perf_counter() - started,
                        **executor.identities())


def _announce(state: Clipwork, executor: Executor, clip: Clip, scores: list[float], progress: Callback) -> None:
    """What a rerun takes from the last one, the estimate, and how the clip is cut."""
    layout, resumed = state.layout, len(state.finished)
    if resumed:
        first_missing = next(i for i in range(layout.frames + 1) if i not in state.finished)
        progress(Message(f"resuming at frame {first_missing + 1}: {resumed} frames already stylised",
                         code="video.resuming", fields={"from_frame": first_missing + 1, "done": resumed}))
        segments = [s for piece in layout.segments for s in piece]
        stored = sum(s.name in state.done for s in segments)
        progress(Message(f"{stored} of {len(segments)} segments already stored; {len(segments) - stored} to run",
                         code="video.segments_stored",
                         fields={"stored": stored, "segments": len(segments), "to_run": len(segments) - stored}))
    estimate = executor.estimate(clip, state.work, scores, resumed, progress)
    if estimate is not None:
        progress(estimate)
    if len(layout.pieces) > 1:
        spans = ", ".join(f"{p.keep_from + 1}-{p.stop_at}" + (f" (lead-in {p.lead})" if p.lead else "")
                          for p in layout.pieces)
        progress(Message(f"{layout.frames} frames in {len(layout.pieces)} pieces on {executor.describe()}: {spans}",
                         code="video.pieces", fields={
                             "frames": layout.frames, "on": executor.describe(),
                             "pieces": [[p.keep_from + 1, p.stop_at] for p in layout.pieces],  # 1-based, inclusive
                             "lead_ins": [p.lead for p in layout.pieces]}))


def _run(state: Clipwork, executor: Executor, clip: Clip, parts: list[Segment | Seam], progress: Callback,
         stop: StopRequest) -> None:
    """Dispatch and store until every part is in; Interrupted on a stop request, once every
    segment in hand is stored or its frames saved (on Ray: given up)."""

    def report(worker: str, event) -> None:
        if isinstance(event, FrameDone):  # of a frame the piece owns (run_segment counts no lead-in)
            if len(state.layout.pieces) == 1:  # one chain: frames finish in clip order, each says which it is
                state.finished.add(event.index)
                progress(FrameDone(event.index, state.layout.frames, event.seconds, event.loss))
            elif event.index not in state.finished:  # pieces side by side: the count of frames done
                state.finished.add(event.index)
                progress(FrameDone(len(state.finished) - 1, state.layout.frames, event.seconds, event.loss))
        elif isinstance(event, Message):
            text = f"{worker}: {event.text}" if worker else event.text
            progress(Message(text, event.level, event.code, event.fields))

    executor.start(clip, state.work, state.suffix, report)
    _join_seams(state)
    while not all(p.name in state.done for p in parts):
        if not stop:
            _dispatch(state, executor)
        else:
            executor.stop()
            if not executor.busy:
                raise Interrupted(stop.signum)
        if not executor.busy and not stop:
            raise ProcessingError(f"{state.work.output}: no segment left to run, yet "
                                  f"{sum(p.name not in state.done for p in parts)} parts are missing")
        output = executor.next(0.2)
        if output is not None:
            _store(state, output)


def _stitch(state: Clipwork, clip: Clip, output_path: Path, settings: Settings, comment: str | None,
            parts: list[Segment | Seam]) -> None:
    """Join the stored parts in clip order into the output, with the clip's sound."""
    h, w = output_frame_size(clip, settings)
    writer = VideoWriter(output_path, w, h, clip.info.fps, audio_from=clip.path if clip.info.has_audio else None,
                         audio_start=clip.audio_start, crf=settings.crf, codec=settings.codec, comment=comment)
    try:
        writer.join([state.work.path / state.done[p.name]["file"] for p in parts], state.layout.frames)
        writer.close()
    except BaseException:
        writer.abort()
        raise


def stylise_video(prepared: Prepared, source: Clip | Path, output_path: Path, *,
                  keep_frames: bool = False, progress: Callback = ignore, stop: StopRequest = NEVER_STOP,
                  overlap: bool = True, comment: str | None = None) -> VideoOutcome:
    """stylise_clip in this process, on engine's device. overlap=False runs decoding, flow, saving
    and encoding in line with the optimisation (the baseline of bench/pipeline.py)."""
    return stylise_clip(InProcess(prepared, stop, overlap=overlap), prepared.settings, source, output_path,
                        keep_frames=keep_frames, progress=progress, stop=stop, comment=comment)
