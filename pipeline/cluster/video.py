"""One clip on the Ray workers: the pieces and lead-ins of --devices, frames sent in chunks.

The clip is cut as video.devices cuts it for local processes (split_clip: scene cuts, cross-faded
lead-ins) and joined by the same Joiner. What differs is transport: this process decodes each piece
and sends CHUNK_FRAMES frames at a time to a worker, with the previous frame's input and output as
the chunk's anchor (replayed as a resume replays a saved frame), so a chunk is a self-contained call
that any worker can run, or run again after its worker is lost. Results come back as uint8 frames;
this process alone saves them in the work folder (resume) and encodes. A piece has one chunk in
flight at a time: the driver holds, per piece, one decoder and one chunk, whatever the clip's length.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import Interrupted, ProcessingError
from ..frames import flow_source_size
from ..progress import NEVER_STOP, Callback, FrameDone, Message, StopRequest, ignore
from ..settings import Settings
from ..style_targets import StyleSet
from ..video.clip import Clip, open_clip, scan
from ..video.devices import Joiner, Piece, split_clip
from ..video.job import VideoOutcome, finish, open_writer
from ..video.workdir import WorkDir, open_work
from .pool import Pool

CHUNK_FRAMES = 8  # frames per call: a few windows, so a lost worker costs little and memory stays flat


@dataclass
class PieceFeed:
    """The driver's side of one piece: its decoder, the next frame to send, and that frame's anchor."""

    number: int
    piece: Piece
    frames: Iterator[np.ndarray]
    next: int
    anchor: tuple[np.ndarray, np.ndarray] | None = None  # (input, output) uint8 of frame next - 1
    sent: list[tuple[int, np.ndarray]] = field(default_factory=list)  # the chunk in flight
    workers: set[str] = field(default_factory=set)  # that ran its chunks
    nodes: set[str] = field(default_factory=set)
    retries: int = 0

    @property
    def finished(self) -> bool:
        return self.next >= self.piece.stop_at and not self.sent

    def chunk(self) -> list[np.ndarray]:
        """Decode the next chunk's frames (at most CHUNK_FRAMES, never past the piece's end)."""
        while len(self.sent) < CHUNK_FRAMES and self.next < self.piece.stop_at:
            self.sent.append((self.next, next(self.frames)))
            self.next += 1
        return [frame for _, frame in self.sent]


def _is_saved(work: WorkDir, piece: Piece, index: int) -> bool:
    return (work.lead_path(index) if index < piece.keep_from else work.frame_path(index)).is_file()


def open_feed(number: int, piece: Piece, clip: Clip, work: WorkDir, settings: Settings) -> PieceFeed:
    """A piece's decoder at its first frame still to do (an interrupted run saved those before)."""
    first = piece.start
    while first < piece.stop_at and _is_saved(work, piece, first):
        first += 1
    h, w = work.size
    frames = iter(clip.frames(flow_source_size(clip.info.width, clip.info.height, (h, w), settings)))
    feed = PieceFeed(number, piece, frames, first)
    for index in range(first):  # the decoder is a stream: frames before the piece are read and dropped
        frame = next(frames)
        if index == first - 1 and first > piece.start:
            feed.anchor = (frame, work.load(index, lead=index < piece.keep_from))
    return feed


def stylise_video_on_cluster(pool: Pool, styles: StyleSet, settings: Settings, source: Clip | Path,
                             output_path: Path, *, keep_frames: bool = False, progress: Callback = ignore,
                             stop: StopRequest = NEVER_STOP, comment: str | None = None) -> VideoOutcome:
    """Stylise a video (or the part a Clip names) on the pool's workers (see the module doc); styles:
    the driver's, which computes the targets once; the caller has checked the output. comment:
    the output's `comment` tag."""
    started = time.perf_counter()
    clip = source if isinstance(source, Clip) else open_clip(source)
    progress(Message("counting frames and finding scene cuts (a fast decode at thumbnail size)"))
    frames, scores, truncated = scan(clip)
    pieces = split_clip(frames, pool.size, scores, settings.scene_cut_threshold)
    work, resumed = open_work(clip, output_path, settings, progress)
    targets = pool.targets_ref(styles, work.size)
    progress(Message(f"{frames} frames in {len(pieces)} pieces on {pool.size} Ray workers: " + ", ".join(
        f"{p.keep_from + 1}-{p.stop_at}" + (f" (lead-in {p.lead})" if p.lead else "") for p in pieces)))
    feeds = [open_feed(j, piece, clip, work, settings) for j, piece in enumerate(pieces)]
    joiner = Joiner(work, pieces, frames, resumed, [f"piece {j + 1}" for j in range(len(pieces))], progress)
    for feed in feeds:
        if feed.finished:
            joiner.take("end", feed.number, None)
    try:
        with open_writer(output_path, clip, work, settings, comment) as writer:
            while joiner.written < frames:
                if not stop:
                    for feed in feeds:
                        if not feed.sent and not feed.finished:
                            pool.submit("frames", targets, work.size, feed.anchor, feed.chunk(), tag=feed)
                got = pool.next_result(0.2)
                if got is not None:
                    _take(got, work, joiner, frames, progress)
                joiner.write_ready(writer)
                if stop and not pool.busy:
                    break  # every chunk in hand is saved: resume next run
                if joiner.stalled(len(feeds)):
                    raise ProcessingError(f"frame {joiner.written + 1} was not produced by any worker")
            if joiner.written < frames:
                raise Interrupted(stop.signum)  # inside the with block: no partial output
    finally:
        for feed in feeds:
            getattr(feed.frames, "close", lambda: None)()
    finish(clip.path, output_path, work, keep_frames=keep_frames, frames=frames, truncated=truncated)
    return VideoOutcome(output_path, frames, resumed, time.perf_counter() - started,
                        workers=tuple(sorted({w for f in feeds for w in f.workers})),
                        nodes=tuple(sorted({n for f in feeds for n in f.nodes})), retries=sum(f.retries for f in feeds))


def _take(got, work: WorkDir, joiner: Joiner, frames: int, progress: Callback) -> None:
    """Save a finished chunk's frames and tell the joiner; a failed chunk ends the clip."""
    call, value = got
    feed: PieceFeed = call.tag
    if isinstance(value, BaseException):
        raise ProcessingError(f"piece {feed.number + 1} failed: {value}")
    identity, outputs = value
    if call.retries:
        progress(Message(f"piece {feed.number + 1}: chunk at frame {feed.sent[0][0] + 1} done after "
                         f"{call.retries} lost worker(s), on {identity['worker']}", level="warning"))
    if len(outputs) != len(feed.sent):
        raise ProcessingError(f"piece {feed.number + 1}: {len(outputs)} frames came back for {len(feed.sent)}")
    for (index, _frame), (output, loss, seconds, _how) in zip(feed.sent, outputs):
        work.save(index, output, lead=index < feed.piece.keep_from)
        joiner.take("event", feed.number, FrameDone(index, frames, seconds, loss))
    feed.anchor = (feed.sent[-1][1], outputs[-1][0])
    feed.workers.add(identity["worker"])
    feed.nodes.add(identity["node"])
    feed.retries += call.retries
    feed.sent = []
    if feed.finished:
        joiner.take("end", feed.number, None)
