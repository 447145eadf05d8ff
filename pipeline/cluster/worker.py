"""What runs inside a Ray actor: an engine and the job's styles, built once and kept for every unit.

Images arrive as bytes and go back encoded. A video segment is decoded here from the input (read
where it is, on a shared volume, or from a copy sent once per node through the object store) and
goes back encoded, with the few raw frames a seam or the next segment needs: a worker needs no
access to the driver's files. The work itself is what a local run does: image_job.stylise_unit
for a unit of images, video.segment.run_segment for a segment.
This module never imports ray: it is importable, and testable, without the extra installed.
"""
from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ..batching import BatchLimit, OutOfMemory, window_batch
from ..engine import Engine, describe_failure
from ..errors import InputError
from ..files import atomic_write_bytes, file_sha256
from ..frames import at_working_size
from ..image_job import Pass, stylise_unit
from ..media.images import Picture, decode_image, encode_image
from ..polish import deliver_still
from ..prepare import Prepared
from ..progress import Estimate, FrameDone
from ..settings import Settings
from ..style_targets import StyleSet, StyleTargets
from ..video.clip import Clip, ScanPart, scan_part
from ..video.segment import SegmentOutput, SegmentTask, run_segment
from ..video.stream import estimate_video
from ..video.workdir import WorkDir

Targets = dict[tuple[int, int], StyleTargets]
# One file's outcome: ("done", encoded bytes, seconds, loss), ("input", problem, seconds, 0.0) for
# content that can never be stylised, or ("error", reason, seconds, 0.0) for anything else.
FileResult = tuple[str, bytes | str, float, float]


class Worker:
    """One actor per GPU (or share of a CPU-only cluster). settings.device auto picks the GPU Ray
    gave it. Every call brings `sent`: [object ref] of the style pictures and their file hashes,
    read by the driver, fetched at the first call (a constructor argument held in the object store
    would break Ray's restart of a lost worker)."""

    def __init__(self, settings: Settings, threads: int = 0):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.settings = replace(settings, devices=())
        self.engine = Engine.create(self.settings)
        self.styles: StyleSet | None = None
        self.image_limits: dict[tuple[int, int], BatchLimit] = {}
        self.window_batches: dict[tuple[int, int], int] = {}  # the trial runs once per size, not per segment
        self.identity = {"node": _node_address(), "worker": f"{socket.gethostname()}:{os.getpid()}",
                         "device": str(self.engine.device)}

    def _styles(self, sent: list | tuple[list[Picture], list[str]], targets: Targets) -> StyleSet:
        if self.styles is None:
            if isinstance(sent, list):  # [object ref], from a Pool
                import ray

                sent = ray.get(sent[0])
            self.styles = StyleSet(self.engine, self.settings, tuple(sent))
        self.styles.seed(targets)
        return self.styles

    def _prepared(self) -> Prepared:
        """The engine, the style set (after _styles) and the settings, as a local job holds them."""
        assert self.styles is not None, "a call's styles come first (_styles)"
        return Prepared(self.engine, self.styles, self.settings)

    def ping(self) -> dict:
        return self.identity

    def file_sha256(self, path: str) -> str | None:
        """The sha256 of a file as this worker sees it, or None where it cannot read it."""
        try:
            return file_sha256(Path(path))
        except OSError:
            return None

    def images(self, sent: list, targets: Targets, files: list[tuple[str, bytes]], ext: str, batch: int
               ) -> tuple[dict, list[FileResult]]:
        """Stylise image files sent as (name, bytes) (image_job.stylise_unit: batched by working
        size); results in the order given, outputs encoded for extension ext (".png", ".jpg", ...)."""
        self._styles(sent, targets)
        results: dict[str, FileResult] = {}
        names: list[str] = []
        pictures: list[Picture] = []
        read: list[float] = []  # seconds each took to decode
        for name, data in files:
            t0 = time.perf_counter()
            try:
                pictures.append(at_working_size(decode_image(data, name), self.settings.size))
            except InputError as e:
                results[name] = ("input", e.problem, time.perf_counter() - t0, 0.0)
                continue
            names.append(name)
            read.append(time.perf_counter() - t0)
        sources = dict(files)
        for done in stylise_unit(self._prepared(), pictures, self.image_limits, batch):
            for j, k in enumerate(done.members):
                results[names[k]] = self._result(done, j, read[k], ext, sources[names[k]], names[k])
        return self.identity, [results[name] for name, _ in files]

    def _result(self, done: Pass, j: int, read: float, ext: str, data: bytes, name: str) -> FileResult:
        """The j-th picture of a pass at the output size (decoded again from data: a unit of large
        photos waits at working size), encoded for ext, or the error that failed it."""
        if isinstance(done.styled, OutOfMemory):
            return "error", str(done.styled), 0.0, 0.0
        if isinstance(done.styled, BaseException):
            return "error", describe_failure(done.styled), read, 0.0
        try:
            t0 = time.perf_counter()
            output = deliver_still(self._prepared(), done.styled[j], decode_image(data, name))
            seconds = read + done.seconds + time.perf_counter() - t0
            return "done", encode_image(output, ext), seconds, float(done.losses[j])
        except Exception as e:  # noqa: BLE001 - this file fails; the unit goes on
            return "error", describe_failure(e), read, 0.0

    def segment(self, sent: list, targets: Targets, clip: Clip, source, task: SegmentTask, key: dict,
                suffix: str, events) -> tuple[dict, bytes | None, SegmentOutput]:
        """Decode, stylise and encode one segment of the clip (video.segment.run_segment), in a
        temporary folder of this worker's own. source: None when the clip's path is readable here
        (a shared volume), else [object ref] of the input's bytes, kept once per node; events:
        (the pool's FrameEvents actor, the clip's token), given (token, segment name, index,
        seconds, loss) per frame as it is done. Returns the segment's encoded bytes (None: it
        encodes no frame) and its output (raw frames, timings)."""
        self._styles(sent, targets)
        box, token = events
        name = task.segment.name

        def progress(event) -> None:
            if isinstance(event, FrameDone):
                box.put.remote((token, name, event.index, event.seconds, event.loss))  # no wait for the answer

        clip = _readable_here(clip, source)
        h, w = key["size"]
        if (h, w) not in self.window_batches:
            self.window_batches[(h, w)] = window_batch(self._prepared(), (h, w))
        with tempfile.TemporaryDirectory(prefix="nstvid-segment-") as folder:
            work = WorkDir(Path(folder) / f"segment{suffix}", key)
            work.path.mkdir()
            output = run_segment(self._prepared(), clip, task, work, suffix, save_frames=False,
                                 batch=self.window_batches[(h, w)], progress=progress)
            data = output.file.read_bytes() if output.file is not None else None
        output.file = None
        return self.identity, data, output

    def estimate(self, sent: list, targets: Targets, clip: Clip, source, scores: list[float], done: int,
                 workers: int) -> Estimate:
        """The clip's estimate (video.stream.estimate_video) from a timed trial on this worker's device,
        the work shared by `workers` of its kind."""
        self._styles(sent, targets)
        return estimate_video(self._prepared(), _readable_here(clip, source), done=done, scores=scores,
                              devices=workers)

    def scan(self, sent: list, clip: Clip, source, first: int, stop: int) -> tuple[dict, ScanPart]:
        """Count frames first..stop-1 of the clip and score its scene cuts (video.clip.scan_part):
        one range of a scan split over the workers. source: as for segment()."""
        return self.identity, scan_part(_readable_here(clip, source), first, stop)


def _readable_here(clip: Clip, source: list | None) -> Clip:
    """The clip as this worker reads it: where it is (source None), else from the node's copy."""
    return clip if source is None else replace(clip, path=_node_copy(source, clip.path.suffix))


def _node_copy(source: list, suffix: str) -> Path:
    """The input sent through the object store, written once per node (every worker there shares
    it; named by content, written to a temporary name and renamed, so a half copy is never read)."""
    import ray

    sha, ref = source
    path = Path(tempfile.gettempdir()) / f"nstvid-input-{sha}{suffix}"
    if not path.is_file():
        atomic_write_bytes(path, ray.get(ref))
    return path


def _node_address() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside Ray (tests of this module): the host's name
        return socket.gethostname()

