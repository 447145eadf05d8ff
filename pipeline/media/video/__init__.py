"""Video probing, decoding and encoding through ffmpeg (imageio-ffmpeg's bundled binary).

This package is the only code of the project that runs ffmpeg (`ffmpeg.py` runs it, `probe.py`
reads what a file holds, `reader.py` decodes, `writer.py` encodes and muxes the audio). Frames are
RGB ``uint8`` numpy arrays of shape ``(H, W, 3)`` in display orientation.
"""

from .ffmpeg import (
                     FFmpegError,
                     MediaError,
                     MediaNotFoundError,
                     NoVideoStreamError,
                     TruncatedVideoError,
                     UnreadableMediaError,
                     ffmpeg_exe,
                     run_ffmpeg,
)
from .probe import FrameSpan, VideoInfo, gif_loop, probe, read_comment
from .reader import FrameReader, read_frames
from .writer import (
                     GIF_LONG_SIDE,
                     GIF_SOURCE,
                     VIDEO_OUTPUT_EXTENSIONS,
                     VideoWriter,
                     container_codec,
                     container_problem,
                     encoder_problem,
                     write_gif,
)

__all__ = [
    "FFmpegError",
    "FrameReader",
    "FrameSpan",
    "GIF_LONG_SIDE",
    "GIF_SOURCE",
    "MediaError",
    "MediaNotFoundError",
    "NoVideoStreamError",
    "TruncatedVideoError",
    "UnreadableMediaError",
    "VIDEO_OUTPUT_EXTENSIONS",
    "VideoInfo",
    "VideoWriter",
    "container_codec",
    "container_problem",
    "encoder_problem",
    "ffmpeg_exe",
    "gif_loop",
    "probe",
    "read_comment",
    "read_frames",
    "run_ffmpeg",
    "write_gif",
]
