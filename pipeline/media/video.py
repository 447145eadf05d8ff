"""Video probing, decoding and encoding through ffmpeg (imageio-ffmpeg's bundled binary).

This is the only module of the project that runs ffmpeg.  Every call passes an argument list
(never a shell string), and failures raise ``MediaError`` subclasses whose ``str()`` is a single
line ``"<path>: <problem>"``; the tail of ffmpeg's stderr is kept on ``error.stderr_tail``.

Frames are RGB ``uint8`` numpy arrays of shape ``(H, W, 3)`` in display orientation.

No ffprobe is shipped with imageio-ffmpeg, so ``probe`` gets its facts from two ffmpeg runs:
  1. ``ffmpeg -i FILE`` (no output): the stream banner on stderr gives the streams, codecs,
     rotation side data and the container's declared duration;
  2. ``ffmpeg -i FILE -map <video> -map 0:a:0? -c copy -f framecrc -``: a demux-only pass (no
     decoding, cheap) that lists every packet's timestamps in the stream's exact time base.  The
     frame rate is derived from those integers, so 30000/1001 stays exactly 30000/1001 (the banner
     prints a rounded "29.97 fps"); the same list reveals variable frame rate, counts packets and
     shows when the file ends before its declared duration (truncation).
"""

from __future__ import annotations

import collections
import itertools
import math
import os
import re
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from pipeline.errors import InputError

__all__ = [
    "FFmpegError",
    "FrameReader",
    "MediaError",
    "MediaNotFoundError",
    "NoVideoStreamError",
    "TruncatedVideoError",
    "UnreadableMediaError",
    "VideoInfo",
    "VideoWriter",
    "ffmpeg_exe",
    "probe",
    "read_frames",
    "run_ffmpeg",
]

_STDERR_TAIL_LINES = 20


# --- errors ---------------------------------------------------------------------------------------


class MediaError(InputError):
    """A media file could not be read or written.  ``str(err)`` is ``"<path>: <problem>"``.

    A ``pipeline.errors.InputError``, so the CLI reports it like any unusable input (exit 2).
    """

    def __init__(self, path: str | os.PathLike, message: str, stderr_tail: str = "") -> None:
        super().__init__(path, message)
        self.message = message
        self.stderr_tail = stderr_tail  # last lines of ffmpeg's stderr, for logs


class MediaNotFoundError(MediaError):
    """The path does not exist or is not a file."""


class UnreadableMediaError(MediaError):
    """The file is empty, not a media file, or too damaged to open (e.g. MP4 without its index)."""


class NoVideoStreamError(MediaError):
    """The file is media but has no video stream (e.g. audio only)."""


class TruncatedVideoError(MediaError):
    """The video ends early or is damaged; raised after yielding every decodable frame.

    ``frames_read`` holds how many frames were yielded before the error.
    """

    exit_code = 1  # the decodable frames were processed; the run still failed

    def __init__(self, path, message, stderr_tail="", frames_read: int = 0) -> None:
        super().__init__(path, message, stderr_tail)
        self.frames_read = frames_read


class FFmpegError(MediaError):
    """ffmpeg failed for another reason (encoding, muxing, bad arguments)."""

    exit_code = 1  # a processing failure rather than a bad input


# --- running ffmpeg -------------------------------------------------------------------------------


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (imported lazily)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _tail(text: str, lines: int = _STDERR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


_GENERIC_FAILURES = re.compile(r"^(Error opening (in|out)put files?\b|Conversion failed)")
_LOG_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")


def _last_line(text: str) -> str:
    """The most specific line of ffmpeg's stderr: the last one that isn't a generic wrapper."""
    lines = [_LOG_PREFIX.sub("", line.strip()) for line in text.strip().splitlines()]
    lines = [line for line in lines if line]
    specific = [line for line in lines if not _GENERIC_FAILURES.match(line)]
    return (specific or lines or ["no message"])[-1]


def run_ffmpeg(args: Sequence[str], path: str | os.PathLike = "ffmpeg") -> str:
    """Run ``ffmpeg -nostdin -hide_banner *args`` to completion and return its stderr.

    Meant for small jobs (remuxing, making test clips).  ``path`` names the file that errors refer
    to.  Raises ``FFmpegError`` (message: ffmpeg's last stderr line) on a non-zero exit.
    """
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", *map(str, args)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise FFmpegError(path, f"ffmpeg failed: {_last_line(stderr)}", _tail(stderr))
    return stderr


class _StderrDrain:
    """Reads a process's stderr on a thread (so the pipe never fills and blocks ffmpeg)."""

    def __init__(self, stream) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=200)
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            self._lines.append(raw.decode("utf-8", "replace").rstrip())
        stream.close()

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "\n".join(self._lines)


# --- probing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learned about a video file.

    Attributes:
        path: the file.
        width, height: display size in pixels of the frames ``read_frames`` yields by default
            (coded size with a 90/270 degree rotation applied).
        fps: exact frame rate of the stream ``read_frames`` yields.  For constant-frame-rate input
            this is the input's rate (e.g. ``Fraction(30000, 1001)``); for variable-frame-rate
            input it is the rate ``read_frames`` resamples to (see ``variable_frame_rate``).
        duration: video duration in seconds (frames / fps for CFR, timestamp extent for VFR).
        frame_count: estimated number of frames ``read_frames`` will yield (an estimate only;
            ``read_frames`` counts the frames it actually decodes).
        has_audio: whether there is an audio stream.
        audio_codec: ffmpeg's name of the first audio stream's codec (e.g. "aac"), or None.
        rotation: display rotation from the stream's display matrix, counter-clockwise degrees,
            one of 0, 90, 180, 270.  ffmpeg applies it when decoding (autorotate).
        variable_frame_rate: the input's frame intervals vary; ``read_frames`` then outputs a
            constant ``fps`` stream (frames duplicated/dropped by ffmpeg) so a re-encoded video
            keeps its duration and audio sync.  Callers should log this.
        video_codec: ffmpeg's name of the video codec (e.g. "h264").
        container_duration: the container's declared duration in seconds, or None if unknown.
        truncated: the file looks truncated or damaged (the demux pass hit corrupt/partial
            packets, or the data ends well before the declared duration).  ``read_frames`` still
            yields what decodes, then raises ``TruncatedVideoError``.
        problem: a short description of why ``truncated`` is set, else "".
        stream_index: ffmpeg's index of the video stream used (``-map 0:<index>``).
    """

    path: str
    width: int
    height: int
    fps: Fraction
    duration: float
    frame_count: int
    has_audio: bool
    audio_codec: str | None
    rotation: int
    variable_frame_rate: bool
    video_codec: str
    container_duration: float | None
    truncated: bool
    problem: str
    stream_index: int


# Rates that real footage uses; timestamps rounded to a coarse time base (e.g. Matroska's
# milliseconds) are snapped to one of these when they match within rounding error.
_STANDARD_RATES = tuple(
    Fraction(r)
    for r in (
        "24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60",
        "120", "12", "15", "10", "8", "5", "1",
    )
)  # fmt: skip

_STREAM_RE = re.compile(r"^\s*Stream #0:(\d+)[^:]*: (Video|Audio|Subtitle|Data|Attachment): (.*)$")
_ROTATION_RE = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)
_DURATION_RE = re.compile(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", re.MULTILINE)
_FPS_RE = re.compile(r"(\d+(?:\.\d+)?)(k?) (?:fps|tbr)")

_NOPTS = -(2**63)  # AV_NOPTS_VALUE as framecrc prints it
# Warnings/errors of the demux pass that mean the data ends early or is damaged.
_DAMAGE_MARKERS = (
    "partial file",
    "ended prematurely",
    "packet corrupt",
    "corrupt input packet",
    "truncat",
    "pes packet size mismatch",
)


@dataclass
class _Stream:
    index: int
    kind: str
    description: str
    side_lines: list[str]


def _parse_banner(stderr: str) -> tuple[list[_Stream], float | None]:
    """Streams (with their indented metadata/side-data lines) and the declared duration."""
    streams: list[_Stream] = []
    current: _Stream | None = None
    for line in stderr.splitlines():
        match = _STREAM_RE.match(line)
        if match:
            current = _Stream(int(match[1]), match[2], match[3], [])
            streams.append(current)
        elif current is not None and line.startswith("    "):
            current.side_lines.append(line.strip())  # the stream's metadata / side data
        else:
            current = None
    duration_match = _DURATION_RE.search(stderr)
    duration = None
    if duration_match:
        h, m, s = duration_match.groups()
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    return streams, duration


def _looks_like_iso_bmff(path: Path) -> bool:
    """Whether the file starts like an MP4/MOV (a top-level box such as ftyp/mdat)."""
    with open(path, "rb") as f:
        head = f.read(8)
    return head[4:8] in (b"ftyp", b"mdat", b"moov", b"free", b"wide", b"skip", b"pnot")


def _open_failure(path: Path, stderr: str) -> MediaError:
    """Turn ffmpeg's failure to open ``path`` into a one-line typed error."""
    low = stderr.lower()
    tail = _tail(stderr)
    if "moov atom not found" in low and _looks_like_iso_bmff(path):
        return UnreadableMediaError(
            path,
            "cannot be read: the MP4/MOV index (moov atom) is missing; the file is probably "
            "truncated (interrupted download or recording)",
            tail,
        )
    if "no such file" in low:
        return MediaNotFoundError(path, "file not found", tail)
    if "invalid data found" in low or "moov atom not found" in low:
        return UnreadableMediaError(
            path, "not a readable video file (unknown or damaged format)", tail
        )
    return UnreadableMediaError(path, f"cannot be opened: {_last_line(stderr)}", tail)


@dataclass
class _Packets:
    """Video/audio packet timestamps from the framecrc demux pass (in each stream's time base)."""

    video_pts: list[int]
    video_durations: list[int]
    video_tb: Fraction
    audio_end: float | None  # seconds, relative to the video's first pts
    coded_size: tuple[int, int] | None
    damage: str


def _demux_packets(path: Path, video_index: int, with_audio: bool) -> _Packets:
    args = ["-i", str(path), "-map", f"0:{video_index}"]
    if with_audio:
        args += ["-map", "0:a:0"]
    # -v warning: keep the demuxer's complaints (damage markers) but not the banner, which
    # repeats the file name (a name like "partial file.mp4" must not look like damage).
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "warning", *args,
           "-c", "copy", "-f", "framecrc", "-"]  # fmt: skip
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise UnreadableMediaError(
            path, f"cannot be demuxed: {_last_line(stderr)}", _tail(stderr)
        )
    time_bases: dict[int, Fraction] = {}
    coded_size = None
    pts: dict[int, list[int]] = {0: [], 1: []}
    durations: dict[int, list[int]] = {0: [], 1: []}
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("#tb "):
            stream, value = line[4:].split(":")
            num, den = value.strip().split("/")
            time_bases[int(stream)] = Fraction(int(num), int(den))
        elif line.startswith("#dimensions 0:"):
            w, h = line.split(":")[1].strip().split("x")
            coded_size = (int(w), int(h))
        elif line and not line.startswith("#"):
            fields = line.split(",")
            stream, value = int(fields[0]), int(fields[2])
            if value == _NOPTS:
                continue
            pts[stream].append(value)
            durations[stream].append(int(fields[3]))
    low = stderr.lower()
    damage = next((m for m in _DAMAGE_MARKERS if m in low), "")
    video_tb = time_bases.get(0, Fraction(1, 1))
    audio_end = None
    if pts[1] and pts[0]:
        audio_tb = time_bases[1]
        last = max(range(len(pts[1])), key=pts[1].__getitem__)
        audio_end = float((pts[1][last] + durations[1][last]) * audio_tb - min(pts[0]) * video_tb)
    return _Packets(pts[0], durations[0], video_tb, audio_end, coded_size, damage)


def _snap_rate(rate: Fraction, tolerance: float) -> Fraction:
    """The standard rate nearest ``rate`` if within relative ``tolerance``, else ``rate`` itself."""
    best = min(_STANDARD_RATES, key=lambda s: abs(s - rate))
    if abs(best - rate) <= tolerance * rate:
        return best
    return rate.limit_denominator(1001)


def _frame_rate(packets: _Packets, banner_fps: Fraction | None) -> tuple[Fraction, bool]:
    """(fps, variable) from packet timestamps; exact when the intervals are all equal."""
    pts = sorted(packets.video_pts)
    if len(pts) < 2:
        return banner_fps or Fraction(25), False
    intervals = [b - a for a, b in zip(pts, pts[1:]) if b > a]
    if not intervals:
        return banner_fps or Fraction(25), False
    tb = packets.video_tb
    # A file cut short loses B-frames that display before its last decoded frame, leaving gaps
    # in the sorted pts: that is not a variable rate, so ignore the last intervals then.
    if packets.damage and len(intervals) > 12:
        intervals = intervals[:-4]
    lo, hi = min(intervals), max(intervals)
    if lo == hi:  # exact constant rate: 1 / (interval * time base), e.g. 30000 / 1001
        return 1 / (lo * tb), False
    median = sorted(intervals)[len(intervals) // 2]
    # Timestamps rounded to the time base jitter by one tick; anything beyond 2% is real VFR.
    variable = hi - lo > 1 and hi - lo > 0.02 * median
    if variable:
        # Resample to the dominant (median-interval) rate: keeps the motion of the normal-rate
        # parts; pauses/dropouts become repeated frames.
        return _snap_rate(1 / (median * tb), 0.01), True
    extent = sum(intervals)
    measured = Fraction(len(intervals)) / (extent * tb)
    # Rounding can shift the mean interval by at most ~one tick over the whole extent.
    return _snap_rate(measured, 2.0 / extent + 1e-6), False


def _banner_fps(description: str) -> Fraction | None:
    match = _FPS_RE.search(description)
    if not match:
        return None
    value = Fraction(match[1]) * (1000 if match[2] else 1)
    return _snap_rate(value, 0.001) if value > 0 else None


def _read_banner(path: Path) -> tuple[list[_Stream], float | None]:
    """Run ``ffmpeg -i path`` and parse its stream banner; raise a typed error if unopenable."""
    # With no output file ffmpeg exits non-zero after printing the banner; only the banner counts.
    proc = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    banner = proc.stderr.decode("utf-8", "replace")
    streams, container_duration = _parse_banner(banner)
    if not streams:
        raise _open_failure(path, banner)
    return streams, container_duration


def _codec_name(stream: _Stream) -> str:
    return stream.description.split()[0].rstrip(",")


def probe(path: str | os.PathLike) -> VideoInfo:
    """Describe the video file at ``path`` (see ``VideoInfo``).

    Raises:
        MediaNotFoundError: no such file.
        UnreadableMediaError: empty file, not a media file, or unopenable (e.g. MP4 cut short so
            its moov index is missing).
        NoVideoStreamError: a media file without a video stream (audio only; cover art doesn't
            count as video).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaNotFoundError(path, "file not found")
    if path.stat().st_size == 0:
        raise UnreadableMediaError(path, "empty file (0 bytes)")

    streams, container_duration = _read_banner(path)
    videos = [s for s in streams if s.kind == "Video" and "(attached pic)" not in s.description]
    audios = [s for s in streams if s.kind == "Audio"]
    if not videos:
        kinds = ", ".join(sorted({s.kind.lower() for s in streams}))
        raise NoVideoStreamError(path, f"no video stream (only {kinds})")
    video = videos[0]

    packets = _demux_packets(path, video.index, bool(audios))
    if not packets.video_pts:
        raise UnreadableMediaError(path, "the video stream has no packets (no frames)")
    fps, variable = _frame_rate(packets, _banner_fps(video.description))

    pts = sorted(packets.video_pts)
    last_duration = packets.video_durations[packets.video_pts.index(pts[-1])]
    if last_duration <= 0 and len(pts) > 1:
        last_duration = pts[-1] - pts[-2]
    extent = float((pts[-1] + max(last_duration, 0) - pts[0]) * packets.video_tb)
    if variable:
        duration = extent
        frame_count = max(1, round(extent * fps))
    else:
        frame_count = len(pts)
        duration = float(frame_count / fps)

    truncated, problem = _truncation(packets, extent, container_duration, fps)

    rotation = _rotation(video.side_lines)
    coded_w, coded_h = packets.coded_size or _size_from_description(path, video.description)
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    return VideoInfo(
        path=str(path),
        width=width,
        height=height,
        fps=fps,
        duration=duration,
        frame_count=frame_count,
        has_audio=bool(audios),
        audio_codec=_codec_name(audios[0]) if audios else None,
        rotation=rotation,
        variable_frame_rate=variable,
        video_codec=_codec_name(video),
        container_duration=container_duration,
        truncated=truncated,
        problem=problem,
        stream_index=video.index,
    )


def _truncation(
    packets: _Packets, video_extent: float, declared: float | None, fps: Fraction
) -> tuple[bool, str]:
    """Whether the demuxed data looks cut short or damaged, and why."""
    if packets.damage:
        return True, f'ffmpeg reported "{packets.damage}" while reading it'

    if declared is not None:
        present = max(video_extent, packets.audio_end or 0.0)
        # Containers round and streams start at small offsets; a real truncation loses far more.
        if declared - present > max(0.5, 0.05 * declared, 3 / float(fps)):
            return True, f"its data ends at {present:.2f} s of the {declared:.2f} s it declares"
    return False, ""


def _rotation(side_lines: list[str]) -> int:
    for line in side_lines:
        match = _ROTATION_RE.search(line)
        if match:
            return round(float(match[1]) / 90) * 90 % 360
    return 0


def _size_from_description(path: Path, description: str) -> tuple[int, int]:
    match = re.search(r"\b([1-9]\d*)x([1-9]\d*)\b", description)
    if not match:
        raise UnreadableMediaError(path, "cannot determine the video size")
    return int(match[1]), int(match[2])


# --- reading --------------------------------------------------------------------------------------


class FrameReader:
    """Iterator over a video's frames, decoded by an ffmpeg pipe; see ``read_frames``.

    Attributes:
        info: the ``VideoInfo`` of the input.
        size: (width, height) of the frames yielded.
        frames_read: frames yielded so far (counted, never taken from the container).
        resampled_to_cfr: True when variable-frame-rate input is being resampled to
            ``info.fps`` (log it).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        size: tuple[int, int] | None = None,
        info: VideoInfo | None = None,
    ) -> None:
        self.info = info if info is not None else probe(path)
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1])) if size else (self.info.width, self.info.height)
        if self.size[0] <= 0 or self.size[1] <= 0:
            raise ValueError(f"frame size must be positive, got {size}")
        self.frames_read = 0
        self.resampled_to_cfr = self.info.variable_frame_rate
        self._frames = self._generate()

    def __iter__(self) -> FrameReader:
        return self

    def __next__(self) -> np.ndarray:
        return next(self._frames)

    def close(self) -> None:
        """Stop decoding early (kills ffmpeg); safe to call more than once."""
        self._frames.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _command(self) -> list[str]:
        width, height = self.size
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error"]
        # Autorotation is ffmpeg's default: frames come out in display orientation.
        cmd += ["-i", str(self.path), "-map", f"0:{self.info.stream_index}"]
        if (width, height) != (self.info.width, self.info.height):
            shrinking = width <= self.info.width and height <= self.info.height
            flags = "area" if shrinking else "bicubic"
            cmd += ["-vf", f"scale={width}:{height}:flags={flags}"]
        if self.info.variable_frame_rate:
            cmd += ["-fps_mode", "cfr", "-r", _rate_arg(self.info.fps)]
        else:
            # One output frame per decoded frame; no duplication/dropping by ffmpeg.
            cmd += ["-fps_mode", "passthrough"]
        cmd += ["-an", "-sn", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        return cmd

    def _generate(self) -> Iterator[np.ndarray]:
        width, height = self.size
        frame_bytes = width * height * 3
        proc = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        drain = _StderrDrain(proc.stderr)
        finished = False
        try:
            while True:
                buffer = bytearray(frame_bytes)
                got = _read_exact(proc.stdout, buffer)
                if got < frame_bytes:
                    break  # end of stream (a partial frame can only come from a dying ffmpeg)
                self.frames_read += 1
                yield np.frombuffer(buffer, np.uint8).reshape(height, width, 3)
            finished = True
        finally:
            if not finished:  # consumer stopped early or failed: don't leave ffmpeg running
                proc.kill()
            proc.stdout.close()
            returncode = proc.wait()
        self._check_end(returncode, drain.text())

    def _check_end(self, returncode: int, stderr: str) -> None:
        """After the last frame: raise if decoding failed or the input was truncated."""
        tail = _tail(stderr)
        if returncode != 0:
            if self.frames_read == 0:
                raise UnreadableMediaError(
                    self.path, f"no frame could be decoded: {_last_line(stderr)}", tail
                )
            raise TruncatedVideoError(
                self.path,
                f"truncated or damaged input: decoding failed after {self.frames_read} frames "
                f"({_last_line(stderr)})",
                tail,
                self.frames_read,
            )
        if self.frames_read == 0:
            raise UnreadableMediaError(self.path, "no frame could be decoded", tail)
        if self.info.truncated:
            raise TruncatedVideoError(
                self.path,
                f"truncated or damaged input: {self.frames_read} frames decoded, then it "
                f"stopped ({self.info.problem})",
                tail,
                self.frames_read,
            )


def _read_exact(stream, buffer: bytearray) -> int:
    """Fill ``buffer`` from ``stream``; return the byte count (short only at end of stream)."""
    view = memoryview(buffer)
    got = 0
    while got < len(buffer):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def read_frames(
    path: str | os.PathLike, size: tuple[int, int] | None = None, info: VideoInfo | None = None
) -> FrameReader:
    """Stream a video's frames as RGB uint8 (H, W, 3) arrays from an ffmpeg pipe.

    Args:
        path: video file.
        size: optional (width, height) to scale to inside ffmpeg (area filter when shrinking);
            default: the display size ``info.width x info.height``.
        info: a ``probe(path)`` result to reuse (probed here when omitted).

    Frames are in display orientation (ffmpeg autorotates).  Constant-frame-rate input is passed
    through frame by frame; variable-frame-rate input is resampled to the constant ``info.fps``
    (``reader.resampled_to_cfr`` is then True) so re-encoding keeps duration and audio sync.

    Raises (while iterating):
        TruncatedVideoError: after the last decodable frame, when the input is truncated or
            damaged (``err.frames_read`` frames were yielded).
        UnreadableMediaError: if not a single frame decodes.
    When ``info`` is not given, ``probe`` runs at call time and its errors (missing, empty,
    unreadable, no video stream) are raised by this call, before any iteration.
    """
    return FrameReader(path, size, info)


# --- writing --------------------------------------------------------------------------------------

# Codecs that take -crf.  VP9 needs -b:v 0 for pure constant-quality mode.
_CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"}
# Audio codecs that players handle when copied into these containers (ffmpeg itself accepts more,
# e.g. PCM in MP4, which most players cannot play).  Other containers: try a copy first.
_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
_AUDIO_COPY_OK = {".mp4": _MP4_AUDIO, ".m4v": _MP4_AUDIO, ".webm": {"opus", "vorbis"}}
# Audio encoder to use when the container can't take the source's audio codec as it is.
_AUDIO_FALLBACK = {".webm": ["libopus", "-b:a", "128k"], ".ogv": ["libvorbis", "-q:a", "5"]}
_DEFAULT_AUDIO_FALLBACK = ["aac", "-b:a", "192k"]
_FASTSTART_EXTS = {".mp4", ".m4v", ".mov"}
_temp_counter = itertools.count()


def _rate_arg(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


class VideoWriter:
    """Encode RGB frames to a video file, atomically, optionally with the audio of another file.

    Usage::

        with VideoWriter("out.mp4", w, h, info.fps, audio_from="in.mp4") as writer:
            for frame in frames:
                writer.write(frame)      # RGB uint8 (h, w, 3)

    Frames go through a pipe into ffmpeg, which writes a hidden temp file next to ``out_path``
    (``.out.mp4.part-<pid>-<n>.video.mp4``; the real extension stays last so ffmpeg picks the
    muxer).  On normal exit the audio of ``audio_from`` (first audio stream, if any) is muxed in
    by a second, copy-only pass; it is stream-copied when the container accepts the codec and
    re-encoded (AAC; Opus for .webm) when it does not (e.g. PCM into MP4), and cut to the video's
    length.  The result then replaces ``out_path`` with ``os.replace``.  If the block raises,
    ffmpeg is killed, temp files are deleted and ``out_path`` is left untouched.

    Args:
        out_path: final file; the extension picks the container.
        width, height: size of the frames passed to ``write``.  Odd sizes are cropped by one
            pixel to even for chroma-subsampled ``pix_fmt``s (``output_size`` says what is written).
        fps: exact frame rate, e.g. ``Fraction(30000, 1001)``.
        audio_from: file whose first audio stream is muxed in, or None for no audio.
        crf: constant-quality factor for x264/x265/VP9/AV1 (ignored by other codecs).
        codec: ffmpeg video encoder name.
        pix_fmt: output pixel format.
    """

    def __init__(
        self,
        out_path: str | os.PathLike,
        width: int,
        height: int,
        fps: Fraction | int | str,
        audio_from: str | os.PathLike | None = None,
        crf: int = 18,
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
    ) -> None:
        self.out_path = Path(out_path)
        self.width, self.height = int(width), int(height)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        self.fps = Fraction(fps)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.crf, self.codec, self.pix_fmt = crf, codec, pix_fmt
        subsampled = pix_fmt.startswith(("yuv420", "yuvj420", "yuv422", "nv12", "p010"))
        self.output_size = (
            (self.width - self.width % 2, self.height - self.height % 2)
            if subsampled
            else (self.width, self.height)
        )
        self.frames_written = 0
        self.audio_reencoded = False  # set when the source audio had to be re-encoded
        ext = self.out_path.suffix
        stem = f".{self.out_path.name}.part-{os.getpid()}-{next(_temp_counter)}"
        self._video_tmp = self.out_path.with_name(f"{stem}.video{ext}")
        self._mux_tmp = self.out_path.with_name(f"{stem}{ext}")
        self._proc: subprocess.Popen | None = None
        self._drain: _StderrDrain | None = None
        self._closed = False

    # context manager -----------------------------------------------------------------------------

    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # public ---------------------------------------------------------------------------------------

    def open(self) -> None:
        """Start the encoder (done by ``with``; call it yourself when not using ``with``)."""
        if self._proc is not None:
            return
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            self._encode_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._drain = _StderrDrain(self._proc.stderr)

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 frame of shape (height, width, 3)."""
        if self._proc is None or self._closed:
            raise RuntimeError("VideoWriter is not open (use it in a with block)")
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a uint8 frame of shape {(self.height, self.width, 3)}, "
                f"got {frame.dtype} {frame.shape}"
            )
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except (BrokenPipeError, OSError):
            stderr = self._stop_encoder(kill=True)
            self._remove_temps()
            raise FFmpegError(
                self.out_path, f"encoder stopped: {_last_line(stderr)}", _tail(stderr)
            ) from None
        self.frames_written += 1

    def close(self) -> None:
        """Finish encoding, mux the audio and move the result to ``out_path``."""
        if self._closed:
            return
        self.open()
        try:
            stderr = self._stop_encoder(kill=False)
            if self._proc.returncode != 0:
                raise FFmpegError(
                    self.out_path, f"encoding failed: {_last_line(stderr)}", _tail(stderr)
                )
            if self.frames_written == 0:
                raise FFmpegError(self.out_path, "no frames were written")
            if self.audio_from is not None:
                self._mux_audio()
                os.replace(self._mux_tmp, self.out_path)
            else:
                os.replace(self._video_tmp, self.out_path)
        finally:
            self._closed = True
            self._remove_temps()

    def abort(self) -> None:
        """Kill the encoder and delete temp files; ``out_path`` is not touched."""
        if self._proc is not None and self._proc.returncode is None:
            self._stop_encoder(kill=True)
        self._closed = True
        self._remove_temps()

    # internals ------------------------------------------------------------------------------------

    def _encode_command(self) -> list[str]:
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-y"]
        cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}"]
        cmd += ["-framerate", _rate_arg(self.fps), "-i", "-"]
        filters = []
        if self.output_size != (self.width, self.height):
            filters.append(f"crop={self.output_size[0]}:{self.output_size[1]}:0:0")
        if self.pix_fmt.startswith("yuv"):
            # Convert with the BT.709 matrix and tag it, so players don't guess the colours.
            filters.append(
                "scale=out_color_matrix=bt709:out_range=tv:"
                "flags=bicubic+accurate_rnd+full_chroma_int"
            )
            color_tags = ["-colorspace", "bt709", "-color_primaries", "bt709",
                          "-color_trc", "bt709", "-color_range", "tv"]  # fmt: skip
        else:
            color_tags = []
        filters.append(f"format={self.pix_fmt}")
        cmd += ["-vf", ",".join(filters), "-fps_mode", "passthrough", "-c:v", self.codec]
        if self.codec in _CRF_CODECS:
            cmd += ["-crf", str(self.crf)]
            if self.codec == "libvpx-vp9":
                cmd += ["-b:v", "0"]
        cmd += ["-pix_fmt", self.pix_fmt, *color_tags, "-an"]
        if self.out_path.suffix.lower() in _FASTSTART_EXTS and self.audio_from is None:
            cmd += ["-movflags", "+faststart"]  # index first, so players can start streaming
        return [*cmd, str(self._video_tmp)]

    def _mux_audio(self) -> None:
        """Second pass: video copied, first audio stream of ``audio_from`` copied or re-encoded."""
        # Cut the audio to the video's length (rounded up to a microsecond so the last frame stays).
        seconds = math.ceil(self.frames_written / self.fps * 1_000_000) / 1_000_000
        base = ["-y", "-v", "error", "-i", str(self._video_tmp), "-i", str(self.audio_from),
                "-map", "0:v:0", "-map", "1:a:0?", "-c:v", "copy",
                "-t", f"{seconds:.6f}"]  # fmt: skip
        tail = []
        if self.out_path.suffix.lower() in _FASTSTART_EXTS:
            tail = ["-movflags", "+faststart"]
        tail.append(str(self._mux_tmp))
        ext = self.out_path.suffix.lower()
        fallback = ["-c:a", *_AUDIO_FALLBACK.get(ext, _DEFAULT_AUDIO_FALLBACK)]
        streams, _ = _read_banner(self.audio_from)
        audio_codecs = [_codec_name(s) for s in streams if s.kind == "Audio"]
        copy_error = None
        # No audio stream: the copy pass still runs (maps nothing) so +faststart gets applied.
        if not audio_codecs or audio_codecs[0] in _AUDIO_COPY_OK.get(ext, {audio_codecs[0]}):
            try:
                run_ffmpeg([*base, "-c:a", "copy", *tail], self.out_path)
                return
            except FFmpegError as error:
                # Typically "codec not currently supported in container": re-encode instead.
                copy_error = error
        try:
            run_ffmpeg([*base, *fallback, *tail], self.out_path)
        except FFmpegError as encode_error:
            tails = [e.stderr_tail for e in (copy_error, encode_error) if e is not None]
            raise FFmpegError(
                self.out_path,
                f"cannot add the audio of {self.audio_from}: {encode_error.message}",
                "\n".join(tails),
            ) from None
        self.audio_reencoded = True

    def _stop_encoder(self, kill: bool) -> str:
        """Close the pipe (or kill ffmpeg) and wait; returns ffmpeg's stderr."""
        proc = self._proc
        if kill:
            proc.kill()
        try:
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        proc.wait()
        return self._drain.text() if self._drain else ""

    def _remove_temps(self) -> None:
        for tmp in (self._video_tmp, self._mux_tmp):
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
