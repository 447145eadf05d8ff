"""Typed errors. `pipeline/` raises these and never prints or exits; the CLI maps them to exit codes."""
from __future__ import annotations

from pathlib import Path


class NstvidError(Exception):
    """Base of every error the pipeline raises on purpose."""

    exit_code = 1


class UsageError(NstvidError):
    """A bad option or option combination (exit 2)."""

    exit_code = 2


class InputError(NstvidError):
    """A named file cannot be used: missing, unreadable, not an image, corrupt (exit 2).

    str() is one line: "<path>: <problem>".
    """

    exit_code = 2

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class WeightsError(InputError):
    """The VGG19 weights cannot be loaded."""


class OutputError(InputError):
    """The output path cannot be written (exists, equals the input, folder not writable)."""


class ProcessingError(NstvidError):
    """Work on a valid input failed part-way (exit 1)."""


class Interrupted(NstvidError):
    """SIGINT/SIGTERM arrived; the current unit of work was finished and saved."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by signal {signum}")
        self.exit_code = 128 + signum


class LockedError(NstvidError):
    """Another live run holds the output folder's lock (exit 3)."""

    exit_code = 3
