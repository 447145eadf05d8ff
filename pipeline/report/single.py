"""The report of a single image or video job: a JobSummary of one record, its page written when
the job starts ("running") and again when it ends, however it ends (done, failed, interrupted).

    with FileReport(options.report, job_info(...)) as report:
        outcome = run_the_file()
        report.done(outcome)
    summary = report.summary
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from ..errors import Interrupted, NstvidError
from ..media.video import FrameSpan
from .record import FileRecord, failure
from .summary import JobInfo, JobSummary
from .writer import ReportPage, write_json


class FileReport:
    """Context manager around one file's work; an error raised in it is recorded, then passes on."""

    def __init__(self, path: str | Path, info: JobInfo, span: FrameSpan | None = None):
        self.path = Path(path)
        self.summary = JobSummary(info.output, job=info, pending=1, to_do=1)
        self.record = FileRecord.of(str(info.input), str(info.output), info.kind, status="pending")
        self.summary.records.append(self.record)
        self.page = ReportPage(self.path, span=span) if self.path.suffix.lower() == ".html" else None
        self.started = time.monotonic()

    def __enter__(self) -> "FileReport":
        if self.page is not None:
            self.page.write(self.summary)  # a page that says "running" from the start
        return self

    def done(self, outcome) -> None:
        """The file is finished: outcome is its ImageOutcome or VideoOutcome."""
        self.record.done(outcome.seconds)
        if getattr(outcome, "workers", ()):
            self.record.made_on(", ".join(outcome.nodes), ", ".join(outcome.workers), outcome.retries or None)
        self.summary.done, self.summary.pending = 1, 0

    def __exit__(self, kind, error, traceback) -> Literal[False]:
        s, record = self.summary, self.record
        s.seconds = time.monotonic() - self.started
        s.ended_at = time.time()
        if isinstance(error, (Interrupted, KeyboardInterrupt)):
            s.stopped_by(error)
            record.interrupted(s.seconds, in_folder=False)
        elif error is not None:
            record.failed(failure(error)[0], s.seconds)
            s.failed, s.pending = 1, 0
            s.exit_code = error.exit_code if isinstance(error, NstvidError) else 1
        if self.page is not None:
            self.page.write(s)
        else:
            write_json(self.path, s, Path(str(record["path"])).parent)
        return False  # the error, if any, is the caller's to report
