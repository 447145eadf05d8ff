"""nstvid: neural style transfer for photos, folders of photos, and video that does not flicker.

    import nstvid

    outcome = nstvid.stylise("photo.jpg", style="starry.jpg", output="photo_starry.png", size=384)

`stylise(input, style=..., output=..., **options)` takes images, videos and folders; options are the
config-file keys (size, style_weight, frame_iterations, preset, overwrite, report, ...);
`write_report(summary, "report.html")` writes a job's report page (or .json) from its summary. Errors are
`nstvid.NstvidError` subclasses; progress events (`Message`, `Iteration`, `FrameDone`, `FileDone`)
go to `progress=callback`. The command line, `nstvid`, is a thin layer over this.

In the source tree this file is the package root: pyproject.toml maps the repository's top level
(`cli.py`, `pipeline/`, `configs/`) into the one installed package `nstvid`.
"""
from __future__ import annotations

__version__ = "0.3.0"

from .pipeline.errors import (
    InputError,
    Interrupted,
    LockedError,
    NstvidError,
    OutputError,
    ProcessingError,
    UsageError,
    WeightsError,
)
from .pipeline.progress import Event, FileDone, FrameDone, Iteration, Message, StopRequest
from .pipeline.settings import RunOptions, Settings

# The API imports torch: loaded at first use, so that `nstvid --help` and `import nstvid` stay quick.
_API = ("stylise", "load_job", "run", "Job", "input_kind", "temporal_error", "DryRun", "write_report")
_OUTCOMES = {"ImageOutcome": "image_job", "VideoOutcome": "video.orchestrator", "FolderSummary": "folder.run",
             "JobSummary": "report.summary"}


def __getattr__(name: str):
    from importlib import import_module

    if name in _API:
        return getattr(import_module(".pipeline.api", __name__), name)
    if name in _OUTCOMES:
        return getattr(import_module(f".pipeline.{_OUTCOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", *_API, *_OUTCOMES, "NstvidError", "UsageError", "InputError", "OutputError",
           "WeightsError", "ProcessingError", "Interrupted", "LockedError", "Event", "Message", "Iteration",
           "FrameDone", "FileDone", "StopRequest", "Settings", "RunOptions"]
