"""Progress events the jobs emit through a callback; the CLI decides how to show them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union


@dataclass(frozen=True)
class Message:
    """A log line ("style targets: cached", "resuming at frame 12", ...)."""

    text: str
    level: str = "info"  # info | warning
    # A stable name for what the line says ("folder.nothing_to_do", "video.resuming"): the JSON
    # log's `code`, which scripts and tests match instead of the wording. "" for lines that are
    # only read by people (the JSON log shows them as "message").
    code: str = ""
    # What the line says as values (JSON types; "frame": 13, "changed": ["settings"]): fields of the
    # JSON log line beside its code, so that scripts and tests read numbers, not the wording.
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Iteration:
    """One optimiser step finished (emitted every step on CPU, every few on GPU)."""

    scale: int  # 1-based
    scales: int
    iteration: int  # 1-based, within the scale
    iterations: int
    loss: float  # summed over the batch


@dataclass(frozen=True)
class FrameDone:
    """A video frame is finished and saved (images report Iteration, then FileDone in a folder)."""

    index: int  # 0-based
    total: int | None  # estimate; None when unknown
    seconds: float  # wall time spent on this frame
    loss: float


@dataclass(frozen=True)
class Estimate:
    """Before the first frame or file: how long the job will take (estimate.py)."""

    text: str  # "1,240 frames, 3 scene cuts: about 19 min on cuda:0 (0.9 s/frame measured)"
    seconds: float
    units: int  # frames or files the progress will count


@dataclass(frozen=True)
class Totals:
    """A folder job's plan is made: this many files are to be stylised (skips and unusable files
    not counted). The CLI's whole-job bar counts FileDone events against it."""

    files: int


@dataclass(frozen=True)
class FileDone:
    """A folder job finished one file."""

    path: str
    status: str  # done | skipped | failed
    seconds: float
    error: str = ""
    output: str = ""
    worker: str = ""  # --engine ray: the worker (host:pid) and node that made it
    node: str = ""


Event = Union[Message, Iteration, FrameDone, FileDone, Estimate, Totals]
Callback = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default callback: drop events."""


class StopRequest:
    """Set by the CLI's signal handler; long jobs look at it between frames or files, finish the unit
    in hand, save it, and raise errors.Interrupted(signum)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def set(self, signum: int) -> None:
        self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None


NEVER_STOP = StopRequest()
