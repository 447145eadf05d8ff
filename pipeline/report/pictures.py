"""The pictures of a report page: thumbnails of images and style images, and for a video three
frames of input and output and its E_warp on a sample of frame pairs.

All decoding and encoding goes through media/ (read_thumbnail, read_frames, jpeg_bytes); the
E_warp is flow.warping_error's, pair by pair, so each sampled value is the one
`nstvid-eval temporal` prints for that pair. Nothing here raises for a bad file: a picture that
cannot be made is None, and the page says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NstvidError
from ..flow import warping_error
from ..media.images import jpeg_bytes, read_thumbnail, resize_u8, shrink_u8
from ..media.video import FrameSpan, read_frames

THUMB = 96  # px, long side of a file's thumbnail: a 40,000-row table stays light
FRAME = 160  # px, long side of a video's sample frames
SAMPLE_PAIRS = 24  # frame pairs whose E_warp the page plots: flow on 4 x 24 frames, not on all of them
JPEG_QUALITY = 70


def thumbnail(path: str | Path, long_side: int = THUMB) -> tuple[bytes, tuple[int, int]] | None:
    """(JPEG bytes, (h, w)) of a small copy of an image file, or None when it cannot be read.

    Only regular files are opened: a FIFO named .png would block the job, not fail."""
    path = Path(path)
    try:
        if not path.is_file():
            return None
        small = read_thumbnail(path, long_side)
        return jpeg_bytes(small, JPEG_QUALITY), small.shape[:2]
    except (NstvidError, OSError):
        return None


@dataclass
class VideoSample:
    """What a page shows of one stylised video.

    frames: three (input JPEG, output JPEG) pairs, at the clip's first, middle and last frame;
    pairs: the 1-based indices k of the sampled pairs (frame k-1 -> k); e_warp and input_e_warp:
    E_warp of the output and of the input itself at those pairs, both measured at the output's
    (working) size, RGB in [0, 1], channels summed (flow.warping_error)."""

    frame_count: int
    size: tuple[int, int]  # the output's (h, w)
    frames: list[tuple[bytes, bytes]] = field(default_factory=list)
    pairs: list[int] = field(default_factory=list)
    e_warp: list[float] = field(default_factory=list)
    input_e_warp: list[float] = field(default_factory=list)
    error: str = ""  # why nothing (or not all) could be measured

    @property
    def mean(self) -> float | None:
        return sum(self.e_warp) / len(self.e_warp) if self.e_warp else None

    @property
    def input_mean(self) -> float | None:
        return sum(self.input_e_warp) / len(self.input_e_warp) if self.input_e_warp else None


def sampled_pairs(frame_count: int, most: int = SAMPLE_PAIRS) -> list[int]:
    """Up to `most` pair indices k in 1 .. frame_count - 1, evenly spread, first and last included."""
    if frame_count < 2:
        return []
    if frame_count - 1 <= most:
        return list(range(1, frame_count))
    step = (frame_count - 2) / (most - 1)
    return sorted({1 + round(i * step) for i in range(most)})


def video_sample(source: str | Path, output: str | Path, frame_count: int,
                 span: FrameSpan | None = None) -> VideoSample:
    """Stream the input (its frames `span` of the file, or all) and the stylised output side by side
    once, keeping three frames of each and measuring E_warp at the sampled pairs only.

    frame_count: the output's frame count (from the job, or a probe); the stream decides in the
    end. A clip whose input and output do not line up frame for frame gets its frames, not E_warp."""
    wanted = sampled_pairs(frame_count)
    keep = {0, frame_count // 2, max(frame_count - 1, 0)}
    sample = VideoSample(frame_count, (0, 0), pairs=[])
    shown: dict[int, tuple[bytes, bytes]] = {}
    prev = None
    index = -1
    try:
        outputs, inputs = iter(read_frames(output)), iter(read_frames(source, span=span))
        for index, out in enumerate(outputs):
            inp = next(inputs, None)
            if inp is None:
                sample.error = "the input has fewer frames than the output: E_warp not measured"
                break
            sample.size = out.shape[:2]
            if index in keep:
                shown[index] = (jpeg_bytes(shrink_u8(inp, FRAME), JPEG_QUALITY),
                                jpeg_bytes(shrink_u8(out, FRAME), JPEG_QUALITY))
            small = resize_u8(inp, out.shape[:2])
            if prev is not None and index in wanted:
                prev_out, prev_in, prev_small = prev
                # The eval's own numbers: output pair against the input pair at full size (warping_error
                # brings the input to the output's size); the floor is the input at the output's size.
                sample.e_warp += warping_error([prev_out, out], [prev_in, inp])
                sample.input_e_warp += warping_error([prev_small, small], [prev_small, small])
                sample.pairs.append(index)
            prev = (out, inp, small)
    except (NstvidError, OSError, ValueError) as e:
        sample.error = str(e).splitlines()[0] if str(e) else type(e).__name__
    sample.frame_count = index + 1
    sample.frames = [shown[k] for k in sorted(shown)]
    return sample

