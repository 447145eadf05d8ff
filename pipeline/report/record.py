"""One file's record in a job's report, and the rules of its wording: what a failure says and
whether it is for good, what an interrupted or unstarted file says, and the exit code of a stop.

A record is the JSON report's line for the file (and an entry of FolderSummary.records for Python
callers), so it is a dict; its keys are set here only: path, status (done | skipped | failed |
pending; "" while the file is in hand), error (one line), seconds, output, kind (image | video),
and with --engine ray node, worker, retries and lost_workers.

The exit codes a job's outcome decides are here too (a refusal's are its error class's, errors.py):
OUT_OF_TIME and a stop's (stopped_exit_code); JobSummary.settle applies them.
"""
from __future__ import annotations

import signal

from ..errors import FileError, InputError, Interrupted, NstvidError, TruncatedInputError

# --max-runtime stopped the job with files left for the next run. A code of its own, so that cron
# tells "ran out of night, run again" from "finished" (0) and "some files failed" (1), and above 1
# in precedence: a folder with a file that fails for good exits 1 on every run, which would hide
# the files still to do. 75 is sysexits.h's EX_TEMPFAIL ("temporary failure; the user is invited
# to retry"), which is what it means here; nstvid exits 75 for nothing else.
OUT_OF_TIME = 75


class FileRecord(dict):
    """One file's record (see the module doc)."""

    @classmethod
    def of(cls, path: str, output: str, kind: str, status: str = "") -> FileRecord:
        return cls(path=path, status=status, error="", seconds=0.0, output=output, kind=kind)

    @property
    def status(self) -> str:
        return self["status"]

    def done(self, seconds: float) -> None:
        self.update(status="done", seconds=round(seconds, 3))

    def skipped(self) -> None:
        self["status"] = "skipped"

    def failed(self, reason: str, seconds: float) -> None:
        self.update(status="failed", error=reason, seconds=round(seconds, 3))

    def not_started(self, interrupted: bool) -> None:
        """Left for the next run before it began: a stop request, or --max-runtime."""
        self.update(status="pending", error="not started: " + ("interrupted" if interrupted else "max runtime reached"))

    def interrupted(self, seconds: float, *, in_folder: bool = True) -> None:
        """Stopped in hand: a video resumes from its saved frames, an image is made again (in a
        folder job, its work in hand abandoned)."""
        if self["kind"] == "video":
            why = "resumes next run"
        else:
            why = "abandoned, redone next run" if in_folder else "redone next run"
        self.update(status="pending", error="interrupted: " + why, seconds=round(seconds, 3))

    def made_on(self, node: str | None, worker: str | None, retries: int | None = None,
                lost: list[str] | None = None) -> None:
        """--engine ray: where the file was made (None: no worker answered), the calls run again
        after a lost worker, and why each was lost."""
        if node is not None:
            self.update(node=node, worker=worker)
        if retries is not None:
            self["retries"] = retries
        if lost:
            self["lost_workers"] = list(lost)


def failure(exc: BaseException) -> tuple[str, bool]:
    """(one-line reason, permanent) of a file's failure. Unusable content fails the same way every
    time: remembered as permanent. Anything else (disk full, out of memory) is tried again next run."""
    if isinstance(exc, FileError):
        return exc.problem, isinstance(exc, (InputError, TruncatedInputError))
    text = str(exc).strip().splitlines()
    if isinstance(exc, NstvidError):
        return (text[0] if text else type(exc).__name__), False
    return (f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__), False


def signal_number(exc: BaseException | int) -> int:
    """The signal a stop came from: Interrupted's, a KeyboardInterrupt's argument, else SIGINT."""
    if isinstance(exc, int):
        return exc
    if isinstance(exc, Interrupted):
        return exc.signum
    if exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return int(signal.SIGINT)


def stopped_exit_code(exc: BaseException | int) -> int:
    """The exit code of a job stopped by a signal (or KeyboardInterrupt): 128 + its number."""
    return 128 + signal_number(exc)
