"""What a video file holds: size, exact frame rate, frame count, audio, rotation, truncation.

No ffprobe is shipped with imageio-ffmpeg, so ``probe`` gets its facts from two ffmpeg runs:
  1. ``ffmpeg -i FILE`` (no output): the stream banner on stderr gives the streams, codecs,
     rotation side data and the container's declared duration;
  2. ``ffmpeg -i FILE -map <video> -map 0:a:0? -c copy -f framecrc -``: a demux-only pass (no
     decoding, cheap) that lists every packet's timestamps in the stream's exact time base.  The
     frame rate is derived from those integers, so 30000/1001 stays exactly 30000/1001 (the banner
     prints a rounded "29.97 fps"); the same list reveals variable frame rate, counts packets and
     shows when the file ends before its declared duration (truncation), and when the video
     starts after the file does (VideoInfo.start). Packets flagged discard (cut off by an edit
     list) are no frames and are left out.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .ffmpeg import (
    MediaError,
    MediaNotFoundError,
    NoVideoStreamError,
    UnreadableMediaError,
    _last_line,
    _tail,
    ffmpeg_exe,
)


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
        start: seconds from the file's start (the time ffmpeg's ``-ss`` and the audio's timestamps
            count from) to frame 0 of the stream ``read_frames`` yields: the first frame's own time
            for constant-frame-rate input, for variable-frame-rate input the time of the first frame
            of the constant-rate grid (multiples of 1 / fps from the file's start) it is resampled
            to. Not 0 when the video starts after the file does (an mp4 edit list that delays the
            video track, a stream that starts later than the sound); frame k is at start + k / fps.
        sample_aspect: the stream's sample (pixel) aspect ratio, 1 for square pixels. Where it is
            not 1 (anamorphic DV, DVD, HDV), width is the display width (the coded width times it,
            rounded) and ``read_frames`` scales every frame to square pixels: what a player shows.
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
    start: float = 0.0
    sample_aspect: Fraction = Fraction(1)


@dataclass(frozen=True)
class FrameSpan:
    """Frames first .. stop - 1 of a video (0-based), and where that part starts in seconds."""

    first: int
    stop: int
    fps: Fraction

    @property
    def frames(self) -> int:
        return self.stop - self.first

    @property
    def seconds(self) -> float:
        """The time of frame `first` after frame 0 (the video's start in its file: VideoInfo.start)."""
        return float(self.first / self.fps)


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
# AV_PKT_FLAG_DISCARD: a packet decoded only to be dropped (what an mp4 edit list that starts inside a
# GOP cuts off, e.g. a stream copy made from a non-keyframe); framecrc prints "F=0x5" for a keyframe.
_DISCARD = 0x4
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
            number, base = line[4:].split(":")
            num, den = base.strip().split("/")
            time_bases[int(number)] = Fraction(int(num), int(den))
        elif line.startswith("#dimensions 0:"):
            w, h = line.split(":")[1].strip().split("x")
            coded_size = (int(w), int(h))
        elif line and not line.startswith("#"):
            fields = line.split(",")
            index, value = int(fields[0]), int(fields[2])
            flags = next((int(f.strip()[2:], 16) for f in fields[6:] if f.strip().startswith("F=")), 1)
            if value == _NOPTS or flags & _DISCARD:
                continue  # not a frame shown: neither counted nor timed
            pts[index].append(value)
            durations[index].append(int(fields[3]))
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


def read_comment(path: str | os.PathLike) -> str | None:
    """The file's `comment` tag (container metadata, as VideoWriter(comment=...) writes it), or
    None: no such tag, or not a media file ffmpeg opens."""
    proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)],
                          stdin=subprocess.DEVNULL, capture_output=True)
    for line in proc.stderr.decode("utf-8", "replace").splitlines():
        if line.startswith(("  Duration:", "    Stream #", "  Stream #")):
            return None  # past the container's own metadata
        key, sep, value = line.strip().partition(":")
        if sep and key.strip().lower() == "comment" and line.startswith("    "):  # Matroska: COMMENT
            return value.strip()
    return None


def gif_loop(path: str | os.PathLike) -> int:
    """How an animated GIF loops, as ffmpeg's -loop takes it: its NETSCAPE2.0 block's count (0: for
    ever, N: N more times), -1 without one (play once); 0 for a file that is not a GIF (a clip made
    into a GIF loops for ever, as GIF previews do)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)  # the block sits before the first frame, after the colour table
    except OSError:
        return 0
    if not head.startswith((b"GIF87a", b"GIF89a")):
        return 0
    at = head.find(b"NETSCAPE2.0\x03\x01")
    return int.from_bytes(head[at + 13:at + 15], "little") if at >= 0 else -1


_SAR_RE = re.compile(r"\[SAR (\d+):(\d+) DAR \d+:\d+\]")


def _sample_aspect(description: str) -> Fraction:
    """The stream's sample aspect ratio from ffmpeg's banner ("720x480 [SAR 32:27 DAR 16:9]"); 1
    where it names none, or 0:1 (unknown)."""
    match = _SAR_RE.search(description)
    if match is None or int(match[1]) == 0 or int(match[2]) == 0:
        return Fraction(1)
    return Fraction(int(match[1]), int(match[2]))


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
        # The slot of the 1/fps grid the reader's fps filter puts the first frame in (rounding to
        # the nearest, halves away from zero, as av_rescale_q_rnd does): frame 0 of its stream.
        start = float(_nearest(pts[0] * packets.video_tb * fps) / fps)
    else:
        frame_count = len(pts)
        duration = float(frame_count / fps)
        start = float(pts[0] * packets.video_tb)

    truncated, problem = _truncation(packets, extent, container_duration, fps)

    rotation = _rotation(video.side_lines)
    coded_w, coded_h = packets.coded_size or _size_from_description(path, video.description)
    sar = _sample_aspect(video.description)
    coded_w = max(1, round(coded_w * sar))  # display width: frames are scaled to square pixels
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    return VideoInfo(path=str(path), width=width, height=height, fps=fps, duration=duration,
                     frame_count=frame_count, has_audio=bool(audios),
                     audio_codec=_codec_name(audios[0]) if audios else None, rotation=rotation,
                     variable_frame_rate=variable, video_codec=_codec_name(video),
                     container_duration=container_duration, truncated=truncated, problem=problem,
                     stream_index=video.index, start=start, sample_aspect=sar)


def _nearest(value: Fraction) -> int:
    """value rounded to the nearest integer, halves away from zero (AV_ROUND_NEAR_INF)."""
    half_up = math.floor(abs(value) + Fraction(1, 2))
    return half_up if value >= 0 else -half_up


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

