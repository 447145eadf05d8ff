"""The frames of a video that a job stylises: the whole file, or the part --start, --duration and
--end ask for, resolved to exact frames once (Clip), and read, counted and keyed from there."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .. import flow
from ..errors import InputError, UsageError
from ..media.video import FrameReader, FrameSpan, TruncatedVideoError, VideoInfo, probe, read_frames
from ..settings import RunOptions, parse_point

THUMBNAIL = (128, 72)  # (w, h) of the counting / scene-cut pass (scene_cut_score works at this size)


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

    def describe(self) -> str:
        if self.span is None:
            return f"about {self.info.frame_count} frames"
        return (f"frames {self.span.first + 1}-{self.span.stop} of {self.info.frame_count} "
                f"({self.span.frames} frames from {self.span.seconds:.2f} s)")


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
    previous = None
    reader = clip.frames(THUMBNAIL)
    try:
        for frame in reader:
            if previous is not None:
                scores.append(flow.scene_cut_score(previous, frame))
            previous = frame
    except TruncatedVideoError as e:
        return reader.frames_read, scores, e
    finally:
        reader.close()
    return reader.frames_read, scores, None
