"""The executor contract: what the orchestrator (orchestrator.py) asks of where a clip's segments
run. InProcess and Devices (executors.py), RayExecutor (cluster/video.py) and the tests' double
(tests/test_store.py) implement it; the type checker (`make test`, mypy) holds each to it.

The resume store has one owner per kind of record: the orchestrator stores segments (their files
and records), seams and anchors. A frame saved the moment it is made (a local or --devices worker,
so that a kill costs one frame, not a segment) goes through the WorkDir the orchestrator hands to
start(); an executor writes nothing else there (a Ray worker's segment comes back as bytes in
SegmentOutput.data, and the orchestrator writes it).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..progress import Callback, Estimate
from .clip import Clip, scan

if TYPE_CHECKING:
    from ..media.video import TruncatedVideoError
    from .segment import SegmentOutput, SegmentTask
    from .workdir import WorkDir

Report = Callable[[str, object], None]  # (worker name, "" in this process; a Message or FrameDone)


class Executor(Protocol):
    """Runs one segment per worker at a time: submit() hands one to a free worker, next() returns
    the next finished SegmentOutput (or None). Called in this order: scan, describe / estimate,
    start, then submit / next / free / busy / stop until done, then close (kill on a second Ctrl-C)."""

    @property
    def workers(self) -> int:
        """Segments it runs at once, >= 1: the clip is cut into at most this many pieces."""

    def scan(self, clip: Clip, work: WorkDir, progress: Callback) -> tuple[int, list[float],
                                                                          TruncatedVideoError | None]:
        """The clip's frame count, its N - 1 scene-cut scores (0..1 per frame pair) and the error
        of a truncated input (video.clip.scan); where the decode runs is the executor's choice."""

    def describe(self) -> str:
        """Where the segments run, for the log: "cuda:0", "2 devices (cpu, cpu)", "4 Ray workers"."""

    def estimate(self, clip: Clip, work: WorkDir, scores: list[float], done: int,
                 progress: Callback) -> Estimate | None:
        """How long the clip's frames not yet `done` will take on these workers; None when unknown."""

    def start(self, clip: Clip, work: WorkDir, suffix: str, report: Report) -> None:
        """Before the first submit: the clip, the resume store (the only place it saves frames),
        the segments' file suffix (".mp4") and where progress goes (report(worker, event))."""

    @property
    def free(self) -> int:
        """Workers without a segment in hand, 0..workers."""

    @property
    def busy(self) -> bool:
        """Whether a segment is in hand (not counting those given up after stop())."""

    def submit(self, task: SegmentTask) -> None:
        """Hand a free worker the segment (the orchestrator submits only while free > 0)."""

    def next(self, timeout: float) -> SegmentOutput | None:
        """The next finished segment, waiting up to `timeout` seconds; None when none finished (or
        one a stop request cut short, its frames saved). Raises ProcessingError when a worker fails."""

    def stop(self) -> None:
        """A stop request: finish or save the frame in hand, start no new frame."""

    def kill(self) -> None:
        """A second Ctrl-C: end the workers now, without waiting for their frames."""

    def identities(self) -> dict:
        """VideoOutcome's fields of where the frames were made ({} when not on Ray)."""

    def close(self) -> None:
        """After the last segment, a failure or a stop: release the workers (the orchestrator's last call)."""


class ExecutorBase:
    """The contract's defaults: the scan decoded once in this process, no estimate, nothing to
    stop, kill or close, no identities. An executor overrides what it does."""

    workers = 1

    def scan(self, clip: Clip, work: WorkDir, progress: Callback) -> tuple[int, list[float],
                                                                          TruncatedVideoError | None]:
        """One decode in this process (ffmpeg's decoder threads already use the machine's cores)."""
        return scan(clip)

    def describe(self) -> str:
        return f"{self.workers} worker(s)"

    def estimate(self, clip: Clip, work: WorkDir, scores: list[float], done: int,
                 progress: Callback) -> Estimate | None:
        return None

    def stop(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def identities(self) -> dict:
        return {}

    def close(self) -> None:
        pass
