"""What a job's report says: the summary every job returns (`JobSummary`: counts and one record per
file) and the job it describes (`JobInfo`: command line, settings, devices, start and end).

A folder job's `FolderSummary` is a JobSummary; a single image or video run with a report gets one
of one record (`api.run`). Records are record.py's FileRecords (dicts, the JSON report's lines),
which own their wording; the summary owns the job's exit code (stopped_by, settle).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..engine import pick_device
from ..settings import RunOptions, Settings
from .record import OUT_OF_TIME, FileRecord, stopped_exit_code


@dataclass(frozen=True)
class JobInfo:
    """The job a report describes; started_at is wall-clock time (time.time())."""

    input: Path
    output: Path
    kind: str  # image | video | folder
    settings: Settings
    options: RunOptions
    started_at: float = field(default_factory=time.time)
    command: tuple[str, ...] = ()  # the command line, as typed; empty for a job run from Python
    devices: tuple[str, ...] = ()  # where it computes: ("cuda:0",), ("cuda:0", "cuda:1"), ("ray",)

    @property
    def engine(self) -> str:
        return self.options.engine


@dataclass
class JobSummary:
    output: Path
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    records: list[FileRecord] = field(default_factory=list)  # one per file (record.py)
    exit_code: int = 0  # 0 all done, 1 some failed, OUT_OF_TIME files left at --max-runtime, 128 + signal
    pending: int = 0  # not started: --max-runtime reached, or interrupted
    to_do: int = 0  # a folder's plan: the files this run set out to stylise (not skipped, not unusable)
    interrupted: bool = False
    stopped_early: bool = False  # --max-runtime reached
    job: JobInfo | None = None  # what the report's page says about the job; None: a summary made by hand
    ended_at: float | None = None  # wall-clock end; None while the job runs
    report_seconds: float = 0.0  # spent writing the HTML report (thumbnails, E_warp samples, the page)
    left_out: list[str] = field(default_factory=list)  # a folder's files neither image nor video (relative)

    def stopped_by(self, exc: BaseException | int) -> None:
        """A signal (or KeyboardInterrupt) stopped the job: exit code 128 + its number."""
        self.interrupted = True
        self.exit_code = stopped_exit_code(exc)

    def settle(self) -> None:
        """The exit code of a job that ran to its end (or to --max-runtime): OUT_OF_TIME when
        --max-runtime left files to do (record.py says why it wins), else 1 when a file failed."""
        if not self.interrupted:
            self.exit_code = OUT_OF_TIME if self.stopped_early and self.pending else 1 if self.failed else 0

    @property
    def nothing_to_do(self) -> bool:
        """The job's plan had no file to stylise (each was done before or is unusable: a rerun after
        the night that did the work), and no signal stopped it before the plan was made."""
        return self.to_do == 0 and not self.interrupted

    @property
    def finished(self) -> bool:
        return self.ended_at is not None

    @property
    def state(self) -> str:
        """running | interrupted | stopped (--max-runtime) | failed (some files) | finished."""
        if self.interrupted:
            return "interrupted"
        if self.stopped_early:
            return "stopped"
        if not self.finished:
            return "running"
        return "failed" if self.failed else "finished"


def job_info(input: Path, output: Path, kind: str, settings: Settings, options: RunOptions) -> JobInfo:
    """The JobInfo of a job starting now: its devices as the engine will pick them (--devices, the
    Ray cluster, or --device with auto resolved), its command line from options.command."""
    if options.engine == "ray":
        devices: tuple[str, ...] = ("ray",)
    elif settings.devices:
        devices = settings.devices
    else:
        devices = (str(pick_device(settings.device)),)
    return JobInfo(Path(input), Path(output), kind, settings, options, command=options.command, devices=devices)
