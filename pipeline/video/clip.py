"""The frames of a video that a job stylises: the whole file, or the part --start, --duration and
--end ask for, resolved to exact frames once (Clip), and read, counted and keyed from there."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .. import flow
from ..errors import InputError, UsageError
from ..media.video import (
    FrameReader,
    FrameSpan,
    TruncatedVideoError,
    UnreadableMediaError,
    VideoInfo,
    probe,
    read_frames,
)
from ..settings import RunOptions
from ..values import parse_point

THUMBNAIL = (128, 72)  # (w, h) of the counting / scene-cut pass (scene_cut_score works at this size)
# A scan split across workers gives each a range of at least this many frames (by the container's
# count): below that the seek and the decoder's start cost more than the range saves.
SCAN_RANGE = 2000
TO_THE_END = 2**62  # a range's stop that no video reaches: the last range reads to the real end


@dataclass(frozen=True)
class Clip:
    path: Path
    info: VideoInfo
    span: FrameSpan | None = None  # None: every frame

    @property
    def frame_count(self) -> int:
        """Frames to stylise: exact for a span; for a whole file the container's count, an
        estimate (the reader counts what it decodes)."""
        return self.span.frames if self.span is not None else self.info.frame_count

    @property
    def audio_start(self) -> float:
        """Where the clip's sound starts in the file, seconds: the time of its first frame, which
        counts from the video's start (info.start: not 0 when the file's sound, or an edit list,
        starts before the video), not from the file's."""
        return self.info.start + (self.span.seconds if self.span is not None else 0.0)

    def frames(self, size: tuple[int, int]) -> FrameReader:
        """The clip's frames as RGB uint8 at size (w, h); index 0 is the clip's first."""
        return read_frames(self.path, size=size, info=self.info, span=self.span)

    def part(self, first: int, stop: int) -> Clip:
        """Frames first..stop-1 of this clip as a clip of their own (decoded from a seek, not
        from the file's start: what a segment reads)."""
        base = self.span.first if self.span is not None else 0
        return Clip(self.path, self.info, FrameSpan(base + first, base + stop, self.info.fps))

    def key(self) -> list[int] | None:
        """What the resume folder records of the part: [first, stop) frame indices."""
        return None if self.span is None else [self.span.first, self.span.stop]

    def record(self) -> str | None:
        """What the output's `comment` tag keeps of a part, {"part": [first, stop]} (0-based frames of
        the input): how nstvid-eval finds the part's own span of the input. None for a whole file."""
        return None if self.span is None else json.dumps({"part": self.key()})

    def describe(self) -> str:
        if self.span is None:
            return f"about {self.info.frame_count} frames"
        return (f"frames {self.span.first + 1}-{self.span.stop} of {self.info.frame_count} "
                f"({self.span.frames} frames from {self.span.seconds:.2f} s)")

    def fields(self) -> dict:
        """describe() as values: the container's frame count and, for a part, its frames (1-based,
        inclusive), how many, and where it starts in seconds."""
        if self.span is None:
            return {"frame_count": self.info.frame_count}
        return {"frame_count": self.info.frame_count, "part": [self.span.first + 1, self.span.stop],
                "part_frames": self.span.frames, "start_seconds": round(self.span.seconds, 3)}


def recorded_part(comment: str | None) -> RunOptions | None:
    """--start and --duration (in frames) of the part a Clip.record() comment names, or None."""
    try:
        first, stop = json.loads(comment or "null")["part"]
        return RunOptions(start=f"{int(first)}f", duration=f"{int(stop) - int(first)}f")
    except (ValueError, TypeError, KeyError):
        return None


def open_clip(path: Path, options: RunOptions | None = None) -> Clip:
    """Probe the video and resolve --start/--duration/--end (in options) to exact frames.

    Times fall on the first frame shown at or after them; 'Nf' counts frames from the start.
    UsageError (one line) for a start past the end, or an end not after the start."""
    info = probe(path)
    if info.width <= 0 or info.height <= 0:
        raise InputError(path, "not a readable video (no frame size)")
    options = options or RunOptions()
    points = {k: parse_point(getattr(options, k), f"--{k}") for k in ("start", "duration", "end")}
    if all(v is None for v in points.values()):
        return Clip(Path(path), info)

    def frames(point: tuple[float, bool]) -> int:
        value, counted = point
        return int(value) if counted else math.ceil(value * info.fps - 1e-6)

    total = info.frame_count
    first = frames(points["start"]) if points["start"] else 0
    if first >= total:
        raise UsageError(f"--start {options.start}: past the end of {path} ({total} frames, "
                         f"{info.duration:.2f} s)")
    stop = total
    if points["duration"] is not None:
        stop = first + frames(points["duration"])
    elif points["end"] is not None:
        stop = frames(points["end"])
    if stop <= first:
        what = f"--duration {options.duration}" if points["duration"] else f"--end {options.end}"
        raise UsageError(f"{what}: no frames after --start {options.start or 0}")
    return Clip(Path(path), info, FrameSpan(first, min(stop, total), info.fps))


def scan(clip: Clip) -> tuple[int, list[float], TruncatedVideoError | None]:
    """Decode the whole clip at thumbnail size (fast): (its exact frame count, the scene-cut
    score between each pair of neighbours, the truncation error if the input ends early)."""
    scores: list[float] = []
    reader = clip.frames(THUMBNAIL)
    try:
        _score(reader, scores)
    except TruncatedVideoError as e:
        return reader.frames_read, scores, e
    finally:
        reader.close()
    return reader.frames_read, scores, None


def _score(frames, scores: list[float]) -> None:
    """Append to scores the scene-cut score of each frame against the one before it."""
    previous = None
    for frame in frames:
        if previous is not None:
            scores.append(flow.scene_cut_score(previous, frame))
        previous = frame


@dataclass
class ScanPart:
    """What a thumbnail decode of frames first..stop-1 of a clip found: how many of them decode,
    the scene-cut score into each of them (from frame first - 1; none into frame 0), and the
    problem, when the input ends early or is damaged inside the range."""

    first: int
    frames: int = 0
    scores: list[float] = field(default_factory=list)
    problem: str | None = None


def scan_ranges(clip: Clip, workers: int) -> list[tuple[int, int]]:
    """The clip cut into ranges for a scan split over `workers`, by the container's frame count
    (an estimate: the last range reads to the real end). One range when the clip is short, and for
    variable-frame-rate input (resampled to a constant rate from the start: a seek would resample
    from another point) or input the probe found damaged (every range would end in its problem)."""
    splits = not (clip.info.variable_frame_rate or clip.info.truncated)
    count = max(1, min(workers, clip.frame_count // SCAN_RANGE)) if splits else 1
    bounds = [round(k * clip.frame_count / count) for k in range(count)] + [TO_THE_END]
    return list(zip(bounds, bounds[1:]))


def scan_part(clip: Clip, first: int, stop: int) -> ScanPart:
    """Decode frames first - 1 .. stop - 1 of the clip at thumbnail size from a seek (what a
    worker of a split scan runs): the frames of [first, stop) that decode, and their scores."""
    origin = max(first - 1, 0)
    if clip.span is not None:
        stop = min(stop, clip.span.frames)  # a part of a file ends where the part does
    part = ScanPart(first)
    if first >= stop:
        return part  # the range starts at or past the part's end: nothing of it to decode
    reader = clip.part(origin, stop).frames(THUMBNAIL)
    try:
        _score(reader, part.scores)
    except TruncatedVideoError as e:
        part.problem = e.message
    except UnreadableMediaError:
        pass  # no frame at all: the range starts past the real end (the container's count was high)
    finally:
        reader.close()
    part.frames = max(reader.frames_read - (first - origin), 0)
    return part


def merge_scans(clip: Clip, parts: list[ScanPart]) -> tuple[int, list[float], TruncatedVideoError | None] | None:
    """The split scan's parts, in clip order, as one scan (what `scan` gives); None when they do
    not fit together (frames after a range that ended early, or none at all): scan serially."""
    frames, scores = 0, []
    for k, part in enumerate(parts):
        if part.frames and part.first != frames:
            return None  # a gap: an earlier range ended early, yet this one decoded frames
        frames += part.frames
        scores += part.scores
        if part.problem is not None:
            if any(p.frames for p in parts[k + 1:]):
                return None
            return frames, scores, TruncatedVideoError(clip.path, part.problem, frames_read=frames)
    return (frames, scores, None) if frames else None
