"""The threads around the optimisation: decoding, flow and planning run ahead of it (Ahead), saving
and encoding behind it (FrameSink), so the device waits for neither. threaded=False runs both in line
(the baseline of bench/pipeline.py). Errors on either thread reach the main thread, in order."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np

from ..media.video import VideoWriter
from .workdir import WorkDir


class Ahead:
    """Runs an iterator on a thread of its own, `depth` items ahead of the consumer (the producer
    half of the pipeline); with threaded=False it is the iterator itself, in line. Errors raised by
    the iterator are raised to the consumer in order."""

    def __init__(self, items: Iterator, *, threaded: bool, depth: int = 2):
        self.items = items
        self.threaded = threaded
        self.closing = threading.Event()
        if threaded:
            self.queue: queue.Queue = queue.Queue(maxsize=depth)
            self.thread = threading.Thread(target=self._fill, name="nstvid-decode", daemon=True)
            self.thread.start()

    def _fill(self) -> None:
        try:
            for item in self.items:
                self._put(("item", item))
                if self.closing.is_set():
                    break
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(("error", e))
        finally:
            self.items.close()  # type: ignore[attr-defined]  # a generator: its finally, in this thread, closes the decoder
            self._put(("done", None))

    def _put(self, entry) -> None:
        while not self.closing.is_set():
            try:
                self.queue.put(entry, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        if not self.threaded:
            yield from self.items
            return
        while True:
            kind, value = self.queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        if not self.threaded:
            self.items.close()  # type: ignore[attr-defined]  # a generator (produce)
            return
        self.closing.set()
        while self.thread.is_alive():
            try:
                self.queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self.thread.join()


class FrameSink:
    """Saves finished frames (the resume store) and passes them to the encoder at the output size
    (deliver: clip index, frame at the working size -> the frame to encode), on a thread of its own
    so that PNG compression, the detail step and encoding overlap the next optimisation
    (threaded=False: in line). An error there (disk full, encoder gone) is raised by the next put()
    or by close()."""

    def __init__(self, work: WorkDir, writer: VideoWriter | None, *, threaded: bool, frames_left: int = 0,
                 deliver: Callable[[int, np.ndarray], np.ndarray] = lambda index, frame: frame):
        self.work, self.writer, self.threaded, self.deliver = work, writer, threaded, deliver
        self.frames_left = frames_left  # checked against the free disk space at the first save
        self.error: BaseException | None = None
        if threaded:
            self.queue: queue.Queue = queue.Queue(maxsize=32)
            self.thread = threading.Thread(target=self._drain, name="nstvid-encode", daemon=True)
            self.thread.start()

    def put(self, index: int, frame: np.ndarray, *, save: bool, lead: bool = False, encode: bool = True) -> None:
        """Queue frame `index` (H, W, 3) uint8, in clip order; save=False for replayed frames;
        lead=True for a lead-in frame (saved apart); encode=False for a frame that comes back raw."""
        if self.error is not None:
            raise self.error
        if self.threaded:
            self.queue.put((index, frame, save, lead, encode))
        else:
            self._handle(index, frame, save, lead, encode)

    def _handle(self, index: int, frame: np.ndarray, save: bool, lead: bool, encode: bool) -> None:
        if save:
            path = self.work.save(index, frame, lead=lead)
            if self.frames_left:
                self.work.check_room(path, self.frames_left)
                self.frames_left = 0
        if self.writer is not None and encode:
            self.writer.write(self.deliver(index, frame))

    def _drain(self) -> None:
        while True:
            entry = self.queue.get()
            if entry is None:
                return
            if self.error is None:
                try:
                    self._handle(*entry)
                except BaseException as e:  # noqa: BLE001 - raised in the main thread
                    self.error = e

    def close(self) -> BaseException | None:
        """Wait until every queued frame is saved and encoded; return the error, if any."""
        if self.threaded:
            self.queue.put(None)
            self.thread.join()
        return self.error
