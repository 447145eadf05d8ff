"""Running the bundled ffmpeg: the binary, one-shot runs, stderr handling and the typed errors.

Every call passes an argument list (never a shell string), and failures raise ``MediaError``
subclasses whose ``str()`` is a single line ``"<path>: <problem>"``; the tail of ffmpeg's stderr is
kept on ``error.stderr_tail``.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import threading
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from ...errors import FileError, InputError, TruncatedInputError

_STDERR_TAIL_LINES = 20

# --- errors ---------------------------------------------------------------------------------------


class MediaError(InputError):
    """A media file could not be read or written.  ``str(err)`` is ``"<path>: <problem>"``.

    A ``errors.InputError``, so the CLI reports it like any unusable input (exit 2).
    """

    def __init__(self, path: str | os.PathLike, message: str, stderr_tail: str = "") -> None:
        super().__init__(Path(path), message)
        self.message = message
        self.stderr_tail = stderr_tail  # last lines of ffmpeg's stderr, for logs


class MediaNotFoundError(MediaError):
    """The path does not exist or is not a file."""


class UnreadableMediaError(MediaError):
    """The file is empty, not a media file, or too damaged to open (e.g. MP4 without its index)."""


class NoVideoStreamError(MediaError):
    """The file is media but has no video stream (e.g. audio only)."""


class TruncatedVideoError(TruncatedInputError):
    """The video ends early or is damaged; raised after yielding every decodable frame.

    ``frames_read`` holds how many frames were yielded before the error.
    """

    def __init__(self, path, message, stderr_tail="", frames_read: int = 0) -> None:
        super().__init__(path, message)
        self.message = message
        self.stderr_tail = stderr_tail
        self.frames_read = frames_read


class FFmpegError(FileError):
    """ffmpeg failed for another reason (encoding, muxing, bad arguments): a processing failure
    rather than a bad input (exit 1)."""

    def __init__(self, path: str | os.PathLike, message: str, stderr_tail: str = "") -> None:
        super().__init__(Path(path), message)
        self.message = message
        self.stderr_tail = stderr_tail


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



def _rate_arg(fps: Fraction) -> str:
    """An exact rate as ffmpeg takes it: 30000/1001, not 29.97."""
    return f"{fps.numerator}/{fps.denominator}"
