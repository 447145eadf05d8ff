"""The report of a single image or video job: a JobSummary of one record, its page written when
the job starts ("running") and again when it ends, however it ends (done, failed, interrupted).

    with FileReport(options.report, job_info(...)) as report:
        outcome = run_the_file()
        report.done(outcome)
    summary = report.summary
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

from ..errors import FileError, Interrupted, NstvidError
from ..media.video import FrameSpan
from .summary import JobInfo, JobSummary
from .writer import ReportPage, write_json


class FileReport:
    """Context manager around one file's work; an error raised in it is recorded, then passes on."""

    def __init__(self, path: str | Path, info: JobInfo, span: FrameSpan | None = None):
        self.path = Path(path)
        self.summary = JobSummary(info.output, job=info, pending=1)
        self.record = {"path": str(info.input), "status": "pending", "error": "", "seconds": 0.0,
                       "output": str(info.output), "kind": info.kind}
        self.summary.records.append(self.record)
        self.page = ReportPage(self.path, span=span) if self.path.suffix.lower() == ".html" else None
        self.started = time.monotonic()

    def __enter__(self) -> "FileReport":
        if self.page is not None:
            self.page.write(self.summary)  # a page that says "running" from the start
        return self

    def done(self, outcome) -> None:
        """The file is finished: outcome is its ImageOutcome or VideoOutcome."""
        self.record.update(status="done", seconds=round(outcome.seconds, 3))
        if getattr(outcome, "workers", ()):
            self.record.update(worker=", ".join(outcome.workers), node=", ".join(outcome.nodes))
        if getattr(outcome, "retries", 0):
            self.record["retries"] = outcome.retries
        self.summary.done, self.summary.pending = 1, 0

    def __exit__(self, kind, error, traceback) -> bool:
        s, record = self.summary, self.record
        if isinstance(error, (Interrupted, KeyboardInterrupt)):
            s.interrupted = True
            s.exit_code = 128 + (error.signum if isinstance(error, Interrupted) else int(signal.SIGINT))
            record["error"] = "interrupted: " + ("resumes next run" if record["kind"] == "video" else "redone next run")
        elif error is not None:
            reason = error.problem if isinstance(error, FileError) else (str(error).strip().splitlines() or [""])[0]
            record.update(status="failed", error=reason or type(error).__name__)
            s.failed, s.pending = 1, 0
            s.exit_code = error.exit_code if isinstance(error, NstvidError) else 1
        s.seconds = time.monotonic() - self.started
        s.ended_at = time.time()
        if record["status"] != "done":
            record["seconds"] = round(s.seconds, 3)
        if self.page is not None:
            self.page.write(s)
        else:
            write_json(self.path, s, Path(record["path"]).parent)
        return False  # the error, if any, is the caller's to report
