"""Encoding: RGB frames piped into ffmpeg, written atomically, with the audio of another file."""

from __future__ import annotations

import functools
import itertools
import math
import os
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from .ffmpeg import FFmpegError, _last_line, _rate_arg, _StderrDrain, _tail, ffmpeg_exe, run_ffmpeg
from .probe import _codec_name, _read_banner

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


class _Joined:
    """In place of the encoder process, for a writer whose video was joined from segments."""

    returncode = 0


def _concat_entry(path: str | os.PathLike) -> str:
    """One line of a concat demuxer list; a quote inside the name is closed, escaped and reopened
    (the demuxer's own quoting)."""
    quoted = str(Path(path).resolve()).replace("'", "'\\''")
    return f"file '{quoted}'\n"


# Containers an output may be written in (ffmpeg picks the muxer from the extension) and the
# encoder each gets with --codec auto (the default): what players expect in it.
CONTAINER_CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264",
                    ".webm": "libvpx-vp9"}
# An animated GIF is made from the whole clip encoded losslessly in this container and codec first
# (segments join by a stream copy), then one palette for the clip (write_gif).
GIF_SOURCE = (".mkv", "ffv1")
# A GIF output's long side unless --size is given: a GIF holds 8-bit palette frames compressed
# losslessly, so one at 1080p takes tens of MB a second.
GIF_LONG_SIDE = 480
VIDEO_OUTPUT_EXTENSIONS = (*CONTAINER_CODECS, ".gif")
_WEBM_CODECS = {"libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"}


def container_codec(out_path: str | os.PathLike) -> str:
    """The encoder --codec auto means for out_path: its container's (a GIF's lossless source's)."""
    ext = Path(out_path).suffix.lower()
    return GIF_SOURCE[1] if ext == ".gif" else CONTAINER_CODECS.get(ext, CONTAINER_CODECS[".mp4"])


def container_problem(out_path: str | os.PathLike, codec: str) -> str:
    """Why ``out_path`` cannot hold a ``codec`` video, or "" when it can."""
    ext = Path(out_path).suffix.lower()
    if ext not in VIDEO_OUTPUT_EXTENSIONS:
        return (f"unknown video format {Path(out_path).suffix!r} "
                f"(use {', '.join(VIDEO_OUTPUT_EXTENSIONS)})")
    if ext == ".webm" and codec not in _WEBM_CODECS:
        return f"a .webm file cannot hold {codec} video (use --codec libvpx-vp9, or leave --codec out)"
    if ext == ".gif" and codec != GIF_SOURCE[1]:
        return f"a .gif file is GIF, a palette per clip: --codec {codec} does not apply (leave --codec out)"
    return ""


# The -crf values each encoder takes (x264/x265 at 8 bits: 0-51; VP9 and the AV1 encoders: 0-63).
CRF_RANGES = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63), "libaom-av1": (0, 63),
              "libsvtav1": (0, 63)}


@functools.lru_cache(maxsize=None)
def _video_encoders() -> frozenset[str]:
    """Names of the video encoders this ffmpeg has (`ffmpeg -encoders`)."""
    proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-encoders"], stdin=subprocess.DEVNULL,
                          capture_output=True)
    names = set()
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] == "V" and parts[1] != "=":
            names.add(parts[1])
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def encoder_problem(codec: str, crf: int) -> str:
    """Why ffmpeg cannot encode this job's video with `codec` at `crf` ("--codec X: ..." or
    "--crf N: ..."), or "" when it can: the encoder list, the encoder's crf range, then one frame
    encoded into the null muxer with the options a VideoWriter passes (an encoder that is listed
    but cannot start here, such as a GPU encoder without its GPU, fails there)."""
    if codec not in _video_encoders():
        usual = ", ".join(c for c in CRF_RANGES if c in _video_encoders())
        return f"--codec {codec}: ffmpeg has no video encoder of that name (usual ones here: {usual})"
    low, high = CRF_RANGES.get(codec, (None, None))
    if low is not None and not low <= crf <= high:
        return f"--crf {crf}: {codec} takes {low}-{high} (lower is better)"
    trial = VideoWriter(Path("probe.mkv"), 64, 64, 25, crf=crf, codec=codec)
    cmd = [*trial._encode_command()[:-1], "-frames:v", "1", "-f", "null", "-"]
    try:
        proc = subprocess.run(cmd, input=bytes(64 * 64 * 3), capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return f"--codec {codec}: a one-frame trial encode did not finish in 120 s"
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace")
        # The encoder's own first complaint says why ("Cannot load libcuda.so.1"); ffmpeg's last
        # line only that nothing was written.
        own = [line.split("]", 1)[1].strip() for line in stderr.splitlines() if line.startswith(f"[{codec} @")]
        return f"--codec {codec}: the encoder does not start here ({own[0] if own else _last_line(stderr)})"
    return ""


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
        audio_start: where in audio_from the audio starts, seconds (the video is part of a clip).
        crf: constant-quality factor for x264/x265/VP9/AV1 (ignored by other codecs).
        codec: ffmpeg video encoder name; "auto": the container's (container_codec).
        pix_fmt: output pixel format.
        comment: text for the file's `comment` tag (probe.read_comment reads it back), or None.
    """

    def __init__(
        self,
        out_path: str | os.PathLike,
        width: int,
        height: int,
        fps: Fraction | int | str,
        audio_from: str | os.PathLike | None = None,
        audio_start: float = 0.0,
        crf: int = 18,
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
        comment: str | None = None,
    ) -> None:
        self.out_path = Path(out_path)
        self.comment = comment
        self.width, self.height = int(width), int(height)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        self.fps = Fraction(fps)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.audio_start = audio_start
        self.crf, self.pix_fmt = crf, pix_fmt
        self.codec = container_codec(self.out_path) if codec == "auto" else codec
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

    def join(self, parts: Sequence[str | os.PathLike], frames: int) -> None:
        """Instead of open() and write(): the video is `parts`, files of this writer's container and
        codec settings each starting with a keyframe (segments), joined in order by a stream copy
        (ffmpeg's concat demuxer: timestamps run on across the joins). frames: how many they hold,
        which close() cuts the audio to. Then close() muxes the audio and moves it into place."""
        if self._proc is not None or self._closed:
            raise RuntimeError("VideoWriter.join replaces open() and write()")
        listing = self._video_tmp.with_name(self._video_tmp.name + ".txt")
        listing.write_text("".join(_concat_entry(p) for p in parts))
        try:
            run_ffmpeg(["-y", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0:v:0",
                        "-c", "copy", *self._comment_args(), *self._faststart_args(), str(self._video_tmp)],
                       self.out_path)
        except BaseException:
            self._remove_temps()
            raise
        finally:
            listing.unlink(missing_ok=True)
        self._proc = _Joined()  # type: ignore[assignment]  # returncode is all that is read after
        self.frames_written = frames

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
        cmd += ["-pix_fmt", self.pix_fmt, *color_tags, "-an", *self._comment_args()]
        return [*cmd, *self._faststart_args(), str(self._video_tmp)]

    def _faststart_args(self) -> list[str]:
        # Index first, so players can start streaming; done by the audio pass when there is one.
        if self.out_path.suffix.lower() in _FASTSTART_EXTS and self.audio_from is None:
            return ["-movflags", "+faststart"]
        return []

    def _comment_args(self) -> list[str]:
        return ["-metadata", f"comment={self.comment}"] if self.comment is not None else []

    def _mux_audio(self) -> None:
        """Second pass: video copied, first audio stream of ``audio_from`` copied or re-encoded."""
        # Cut the audio to the video's length (rounded up to a microsecond so the last frame stays).
        seconds = math.ceil(self.frames_written / self.fps * 1_000_000) / 1_000_000
        seek = ["-ss", f"{self.audio_start:.6f}"] if self.audio_start else []
        base = ["-y", "-v", "error", "-i", str(self._video_tmp), *seek, "-i", str(self.audio_from),
                "-map", "0:v:0", "-map", "1:a:0?", "-c:v", "copy",
                "-t", f"{seconds:.6f}", *self._comment_args()]  # fmt: skip
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
        if isinstance(proc, _Joined):
            return ""
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


def write_gif(source: str | os.PathLike, out_path: str | os.PathLike, loop: int = 0) -> None:
    """An animated GIF at out_path of the video `source` (GIF_SOURCE: lossless), atomically: one
    palette made for the whole clip (palettegen over every frame, then paletteuse; a palette per
    frame flickers), its frame rate and size kept, no sound. loop: as ffmpeg's -loop takes it and
    a GIF's NETSCAPE block holds it (0: for ever, -1: play once, N: N more times; probe.gif_loop)."""
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.part-{os.getpid()}-{next(_temp_counter)}.gif")
    palette = "split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=sierra2_4a"
    try:
        run_ffmpeg(["-y", "-v", "error", "-i", str(source), "-map", "0:v:0", "-vf", palette, "-an",
                    "-loop", str(loop), "-f", "gif", str(tmp)], out_path)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
