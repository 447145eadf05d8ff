"""Typed errors. `pipeline/` raises these and never prints or exits; the CLI maps them to exit codes.

Each class names its exit code and its `code`: the stable name the JSON log gives the error's line
(as progress.Message.code names a message), which scripts match instead of the wording."""
from __future__ import annotations

from pathlib import Path


class NstvidError(Exception):
    """Base of every error the pipeline raises on purpose."""

    exit_code = 1
    code = "error"


class UsageError(NstvidError):
    """A bad option or option combination (exit 2)."""

    exit_code = 2
    code = "error.usage"


class FileError(NstvidError):
    """A problem with one named file. str() is one line: "<path>: <problem>"."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class InputError(FileError):
    """A named input cannot be used: missing, unreadable, not an image, corrupt (exit 2)."""

    exit_code = 2
    code = "error.input"


class WeightsError(InputError):
    """The VGG19 weights cannot be loaded."""

    code = "error.weights"


class OutputError(FileError):
    """The output path cannot be written: it exists, equals the input, or its folder is not
    writable (exit 2). Unlike an InputError it may pass by itself (disk space, permissions)."""

    exit_code = 2
    code = "error.output"


class TruncatedInputError(FileError):
    """The input ends early or is damaged part-way (exit 4): every frame that decoded was
    stylised and the output holds them, but it is shorter than the input."""

    exit_code = 4
    code = "error.truncated"


class ProcessingError(NstvidError):
    """Work on a valid input failed part-way (exit 1)."""

    code = "error.processing"


class Interrupted(NstvidError):
    """SIGINT/SIGTERM arrived; the current unit of work was finished and saved."""

    code = "error.interrupted"

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by signal {signum}")
        self.exit_code = 128 + signum


class LockedError(NstvidError):
    """Another live run holds the output folder's lock (exit 3)."""

    exit_code = 3
    code = "error.locked"
