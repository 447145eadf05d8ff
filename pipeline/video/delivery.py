"""A clip's output frames: each stylised frame (at the working size) carried to the output size by
the detail step (deliver.py), with its own input frame decoded at the output size.

The chain, the resume store and the frames a segment hands back raw all stay at the working size;
only what is encoded is delivered. The input frames at the output size come from a decode of their
own, opened at the first frame delivered: the chain's decode is at the flow's size, and holding a
window of 4K frames for it would cost far more than decoding a range twice.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..deliver import deliver_frame, video_output_size
from ..media.video import FrameReader
from ..settings import Settings
from .clip import Clip


def output_frame_size(clip: Clip, settings: Settings) -> tuple[int, int]:
    """The (h, w) a clip's output is encoded at (--output-size; the source's own by default)."""
    return video_output_size(clip.info.width, clip.info.height, settings.output_size)


class Delivery:
    """Stylised frames of clip indices before `stop`, given in increasing order -> output frames.

        delivery = Delivery(clip, settings, working, stop)
        writer.write(delivery(index, painted))   # painted (h, w, 3) uint8 -> (H, W, 3) uint8
        delivery.close()

    Where the output size is the working size, frames pass as they are and nothing is decoded."""

    def __init__(self, clip: Clip, settings: Settings, working: tuple[int, int], stop: int):
        self.clip, self.how, self.stop = clip, settings.detail, stop
        self.size = output_frame_size(clip, settings)
        self.identity = self.size == tuple(working)
        self.reader: FrameReader | None = None
        self.next_index = 0  # the clip index of the reader's next frame
        self.frames: Iterator[np.ndarray] = iter(())

    def __call__(self, index: int, painted: np.ndarray) -> np.ndarray:
        if self.identity:
            return painted
        if self.reader is None or index < self.next_index:
            self.close()
            self.reader = self.clip.part(index, self.stop).frames((self.size[1], self.size[0]))
            self.frames, self.next_index = iter(self.reader), index
        for _ in range(index - self.next_index):  # frames not delivered (encoded elsewhere)
            next(self.frames)
        source = next(self.frames)
        self.next_index = index + 1
        return deliver_frame(painted, source, self.how)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
