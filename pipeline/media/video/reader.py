"""Decoding: a video's frames streamed as RGB uint8 (H, W, 3) arrays from an ffmpeg pipe."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Generator
from pathlib import Path

import numpy as np

from .ffmpeg import TruncatedVideoError, UnreadableMediaError, _last_line, _rate_arg, _StderrDrain, _tail, ffmpeg_exe
from .probe import FrameSpan, VideoInfo, probe


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
        span: FrameSpan | None = None,
    ) -> None:
        self.info = info if info is not None else probe(path)
        self.span = span
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
        fps = self.info.fps
        first = self.span.first if self.span is not None else 0
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error"]
        filters = []
        if not self.info.variable_frame_rate:
            if first:
                # Input seeking decodes from the keyframe before and drops every frame timed before
                # this point (ffmpeg's accurate seek): half a frame early, so frame `first` is the
                # first. -ss counts from the file's start, where the video may not start (an edit
                # list that delays it, sound that starts first): from the video's first frame.
                cmd += ["-ss", f"{self.info.start + (first - 0.5) / fps:.6f}"]
        else:
            # Resampled by the fps filter: frame k of the grid of 1/fps from the file's start holds
            # the last input frame timed at or before it (to the nearest grid frame), frame 0 being
            # the grid frame of the first input frame (VideoInfo.start). What a grid frame holds
            # then depends on the timestamps alone, so a read from a seek yields what a read from
            # the start does, provided: the timestamps stay the file's own, counted from its start
            # as the probe's demux pass counts them, not from the seek point (-copyts
            # -start_at_zero); every frame from the keyframe on is decoded (-noaccurate_seek: frame
            # `first` may hold a frame from before any seek point, a pause); the seek goes a frame
            # early; trim drops the grid frames before frame `first`.
            cmd += ["-copyts", "-start_at_zero"]
            seek = self.info.start + (first - 1) / fps
            if first and seek > 0:
                cmd += ["-noaccurate_seek", "-ss", f"{seek:.6f}"]
            slot = round(self.info.start * fps)  # the grid frame that is frame 0 (VideoInfo.start)
            filters += [f"fps={_rate_arg(fps)}", f"trim=start_pts={slot + first}"]
        # Autorotation is ffmpeg's default: frames come out in display orientation.
        cmd += ["-i", str(self.path), "-map", f"0:{self.info.stream_index}"]
        if self.span is not None:
            cmd += ["-frames:v", str(self.span.stop - self.span.first)]
        if (width, height) != (self.info.width, self.info.height) or self.info.sample_aspect != 1:
            shrinking = width <= self.info.width and height <= self.info.height
            flags = "area" if shrinking else "bicubic"
            filters += [f"scale={width}:{height}:flags={flags}", "setsar=1"]  # square pixels (probe)
        if filters:
            cmd += ["-vf", ",".join(filters)]
        # One output frame per frame out of the filters; no duplication/dropping by ffmpeg.
        cmd += ["-fps_mode", "passthrough"]
        cmd += ["-an", "-sn", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        return cmd

    def _generate(self) -> Generator[np.ndarray, None, None]:
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
    path: str | os.PathLike, size: tuple[int, int] | None = None, info: VideoInfo | None = None,
    span: FrameSpan | None = None,
) -> FrameReader:
    """Stream a video's frames as RGB uint8 (H, W, 3) arrays from an ffmpeg pipe.

    Args:
        path: video file.
        size: optional (width, height) to scale to inside ffmpeg (area filter when shrinking);
            default: the display size ``info.width x info.height``.
        info: a ``probe(path)`` result to reuse (probed here when omitted).
        span: only frames span.first .. span.stop - 1 (0-based, of the stream ``read_frames``
            yields without one), exactly: no snapping to keyframes.

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
    return FrameReader(path, size, info, span)

