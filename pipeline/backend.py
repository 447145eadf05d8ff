"""Where a job's work runs, chosen once per job: api.py builds the one backend a job has, this
machine (LocalBackend: this process, or a worker process per --devices device) or a Ray cluster
(cluster/backend.py). The jobs take it and ask it for what they run on:

* video_executor: what runs a clip's segments (the orchestrator's executor, video/contract.py);
* image_units: what runs a folder's units of images (ImageUnits);
* stylise_image: one image file.

A folder job runs one loop over its units on either (folder/run.py); LocalBackend's ImageUnits run
each unit as it is submitted, a pool that is never busy, so the loop needs no case for it.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .progress import Callback, Estimate, StopRequest
from .settings import Settings

if TYPE_CHECKING:
    from .image_job import ImageOutcome
    from .prepare import Prepared
    from .video.contract import Executor

Prepare = Callable[[], "Prepared"]  # the job's engine, style set and settings (prepare.py), built at the first call


class UnitJob(Protocol):
    """What a runner of image units needs of the folder job (folder/job.py FolderJob): its
    settings and callback, and the bookkeeping of each file. `task` is a folder/triage.py Task."""

    settings: Settings
    progress: Callback

    def prepared(self) -> Prepared:
        """The job's engine, style set and settings, built at the first call."""

    def estimate(self, tasks: list[Any]) -> Estimate:
        """How long the files will take, from a timed trial in this process."""

    def announce(self, task: Any) -> None:
        """Say that the file is begun ("[3/12] in -> out")."""

    def begin(self, task: Any) -> None:
        """Record the file as started and check its output; raises: the file fails."""

    def attempt(self, task: Any) -> AbstractContextManager[Any]:
        """A step of one file: an error in it fails that file alone (`.failed` after)."""

    def origin(self, task: Any) -> str:
        """The record of its origin a begun file's output keeps."""

    def done(self, task: Any) -> None:
        """The file is done: manifest, report record, FileDone."""

    def fail(self, task: Any, error: BaseException) -> None:
        """The file failed with error: manifest, report record, FileDone."""

    def interrupted(self, tasks: list[Any], exc: BaseException) -> None:
        """A second signal: the files in hand are abandoned, left for the next run."""

    def run_images(self, tasks: list[Any]) -> None:
        """Read, stylise and write one unit of images in this process."""


class ImageUnits(Protocol):
    """A folder job's units of images in flight: submit() one while `room`, wait() for a finished
    one; each finished file is recorded through the job (done / fail) as it comes back."""

    @property
    def room(self) -> bool:
        """Whether a unit submitted now starts at once (a worker is idle)."""

    def opening(self, files: int, units: int) -> None:
        """Before the first unit: `files` images and videos to stylise in `units` units."""

    def first(self, tasks: list[Any]) -> None:
        """The first unit is about to start (tasks: the job's files to stylise)."""

    def submit(self, unit: list[Any]) -> None:
        """Begin each file of the unit and start it."""

    def wait(self) -> None:
        """Take a finished unit, if one comes within half a second; nothing when none is in flight."""

    def drain(self) -> None:
        """Take the units in flight until none is."""

    def abandon(self, exc: BaseException) -> None:
        """A second signal: give up the units in flight (their files are left for the next run)."""


class Backend(Protocol):
    """Where a job runs (see the module doc)."""

    def image_batch(self) -> int:
        """Images per unit of a folder job (--batch N, else what the devices take)."""

    def image_units(self, job: UnitJob) -> ImageUnits:
        """The runner of the folder job's units of images."""

    def video_executor(self, prepared: Prepare, stop: StopRequest) -> Executor:
        """What runs one clip's segments; the orchestrator closes it at the clip's end."""

    def stylise_image(self, prepared: Prepare, input_path: Path, output_path: Path,
                      progress: Callback) -> ImageOutcome:
        """Read, stylise and write one image file (the caller has checked the output)."""

    def close(self) -> None:
        """Leave what the job joined (a cluster); the job's last call."""


class InProcessUnits:
    """Each unit runs in this process when it is submitted: never busy, nothing in flight."""

    room = True

    def __init__(self, job: UnitJob):
        self.job = job

    def opening(self, files: int, units: int) -> None:
        pass

    def first(self, tasks: list[Any]) -> None:
        self.job.progress(self.job.estimate(tasks))

    def submit(self, unit: list[Any]) -> None:
        self.job.run_images(unit)

    def wait(self) -> None:
        pass

    def drain(self) -> None:
        pass

    def abandon(self, exc: BaseException) -> None:
        pass  # run_images records its own unit's files


class LocalBackend:
    """This machine: this process's engine, or one worker process per --devices device for a
    clip's segments (images run on the first device)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def image_batch(self) -> int:
        from .batching import image_batch

        return image_batch(self.settings)

    def image_units(self, job: UnitJob) -> ImageUnits:
        return InProcessUnits(job)

    def video_executor(self, prepared: Prepare, stop: StopRequest) -> Executor:
        from .video.executors import Devices, InProcess

        if self.settings.devices:
            return Devices(self.settings, stop)  # the workers build their own engines
        return InProcess(prepared(), stop)

    def stylise_image(self, prepared: Prepare, input_path: Path, output_path: Path,
                      progress: Callback) -> ImageOutcome:
        from .image_job import stylise_file

        return stylise_file(prepared(), input_path, output_path, progress=progress)

    def close(self) -> None:
        pass

