"""One folder job's work and its record of every file: the stop / --max-runtime check, the units
run in this process, and the bookkeeping of each file (manifest entry, report record, FileDone),
which every backend's runner of units shares (backend.py).
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import image_job
from ..backend import Backend
from ..batching import BatchLimit
from ..deliver import output_size
from ..errors import InputError, Interrupted, OutputError
from ..estimate import folder_estimate, trial
from ..files import file_sha256
from ..frames import at_working_size, video_size
from ..media.images import Picture, check_working_size, header_size, read_image, working_size, write_image
from ..media.video import probe
from ..outputs import check_output
from ..polish import deliver_still
from ..prepare import Prepared, prepare
from ..progress import Callback, Estimate, FileDone, Message, StopRequest
from ..report.record import FileRecord, failure
from ..report.summary import JobSummary
from ..settings import RunOptions, Settings
from ..video.orchestrator import stylise_clip
from .manifest import Manifest
from .origin import record
from .triage import Task


class FolderSummary(JobSummary):
    """A folder job's summary (report/summary.py): what run_folder returns and the report shows."""


def _clean_stale_parts(out_path: Path) -> None:
    """Temp files an earlier, killed run left beside this output (atomic writes use .NAME.*.part)."""
    try:
        for part in out_path.parent.glob(f".{out_path.name}.*.part"):
            part.unlink(missing_ok=True)
    except OSError:
        pass


class Attempt:
    """Whether a step of a file failed (FolderJob.attempt)."""

    failed = False


class FolderJob:
    """The work of one folder run: units of tasks, the stop / --max-runtime check before each
    optimisation pass, and the bookkeeping for each file (manifest, report record, FileDone)."""

    def __init__(self, settings: Settings, options: RunOptions, manifest: Manifest, summary: FolderSummary,
                 progress: Callback, started: float, stop: StopRequest, todo: int, batch: int):
        self.settings, self.options, self.manifest = settings, options, manifest
        self.summary, self.progress, self.started, self.stop = summary, progress, started, stop
        self.todo = todo
        self.open = todo  # tasks without a status yet: "left for the next run" when stopping
        self.index = 0  # files begun, for the "[index/todo]" lines
        self.batch = batch
        self.limits: dict[tuple[int, int], BatchLimit] = {}  # working size -> its batch limit
        self._prepared: Prepared | None = None

    def prepared(self) -> Prepared:
        """The engine, style set and settings, built at the first file: a rerun with nothing to do
        never loads the network."""
        if self._prepared is None:
            self._prepared = prepare(self.settings, self.progress)
        return self._prepared

    def estimate(self, tasks: list[Task]) -> Estimate:
        """How long the files to do will take: a timed trial at the commonest working size, and
        each file's size (image headers; for videos the container's size and frame count)."""
        prepared = self.prepared()
        long_side = self.settings.size
        sources = [header_size(t.item.path) or (long_side, long_side) for t in tasks if t.item.kind == "image"]
        images = [(working_size(size, long_side), output_size(size, self.settings.output_size)) for size in sources]
        videos = []
        for task in (t for t in tasks if t.item.kind == "video"):
            try:
                info = probe(task.item.path)
            except InputError:
                continue  # it fails when its turn comes
            videos.append((video_size(info.width, info.height, long_side), info.frame_count))
        sizes = [working for working, _ in images] + [size for size, _ in videos]
        measured = trial(prepared, max(set(sizes), key=sizes.count))
        return folder_estimate(self.settings, images, videos, measured, str(prepared.engine.device))

    # -- stopping

    def halted(self) -> bool:
        """True when no new work may start: a stop request, an interrupt or --max-runtime (said once)."""
        s = self.summary
        if s.interrupted or s.stopped_early:
            return True
        if self.stop:
            s.stopped_by(self.stop.signum)
            self.progress(Message(f"stopping on signal {self.stop.signum}: {self.open} file(s) left for "
                                  "the next run", level="warning", code="job.stopping"))
            return True
        limit = self.options.max_runtime
        if limit is not None and time.monotonic() - self.started > limit:
            s.stopped_early = True
            self.progress(Message(f"max runtime {limit:g} s reached: stopping, "
                                  f"{self.open} file(s) left for the next run", code="job.max_runtime"))
            return True
        return False

    def not_started(self, task: Task) -> None:
        task.record.not_started(self.summary.interrupted)
        self.summary.pending += 1
        self.open -= 1

    def interrupted(self, tasks: list[Task], exc: BaseException) -> None:
        """A second signal (KeyboardInterrupt) or a video's Interrupted: the files in hand are
        abandoned (a video keeps its resume state) and left pending; the rest is bookkeeping."""
        s = self.summary
        s.stopped_by(exc)
        for task in tasks:
            video = task.item.kind == "video"
            task.record.interrupted(task.seconds)
            s.pending += 1
            self.open -= 1
            self.progress(Message(f"interrupted: {task.item.path} " + (
                "stopped (it resumes next run)" if video else "abandoned (it is redone next run)"),
                level="warning", code="file.interrupted"))
        self.manifest.abandoned()

    # -- one file's bookkeeping

    def begin(self, task: Task) -> None:
        """Record the file as started (so that a rerun may replace the output it leaves), make its
        output folder and check the output path. Raises OSError / OutputError: the file fails."""
        item = task.item
        self.manifest.started(item.rel, output=item.out_rel, settings=task.digest, size=item.size,
                              mtime_ns=item.mtime_ns, sha256=task.sha256 or file_sha256(item.path))
        task.out_path.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale_parts(task.out_path)
        check_output(item.path, task.out_path, kind=item.kind, overwrite=True, codec=self.settings.codec)

    def origin(self, task: Task) -> str:
        """The record a begun file's output keeps of its origin (origin.py)."""
        return record(self.manifest.sha256(task.item.rel), task.digest)

    @contextmanager
    def attempt(self, task: Task) -> Iterator[Attempt]:
        """One step of one file (read, stylise, write), timed into task.seconds. An error in it
        fails that file alone, recorded and reported, and the job goes on; a stop passes through.

            with job.attempt(task) as attempt:
                write_image(task.out_path, picture)
            if not attempt.failed:
                job.done(task)
        """
        outcome = Attempt()
        t0 = time.perf_counter()
        try:
            try:
                yield outcome
            finally:
                task.seconds += time.perf_counter() - t0
        except Interrupted:
            raise
        except Exception as e:  # noqa: BLE001 - one bad file must not end the job
            outcome.failed = True
            self.fail(task, e)

    def announce(self, task: Task) -> None:
        self.index += 1
        self.progress(Message(f"[{self.index}/{self.todo}] {task.item.path} -> {task.out_path}", code="file.start"))

    def fail(self, task: Task, error: BaseException) -> None:
        reason, permanent = failure(error)
        try:
            self.manifest.failed(task.item.rel, reason, permanent)
        except OutputError:
            pass  # saved at the end
        self.open -= 1
        record_failure(task.record, reason, task.seconds, self.summary, self.progress)

    def done(self, task: Task) -> None:
        try:
            self.manifest.done(task.item.rel, task.seconds)  # a kill from here on does not cost this file
        except OutputError as e:
            self.progress(Message(f"{e}; saved at the end instead", level="warning"))
        task.record.done(task.seconds)
        self.summary.done += 1
        self.open -= 1
        self.progress(FileDone(str(task.item.path), "done", task.seconds, output=str(task.out_path),
                               worker=task.record.get("worker", ""), node=task.record.get("node", "")))

    # -- the work

    def run_video(self, task: Task, backend: Backend) -> None:
        """Stylise one video on the backend's executor (this process, --devices, Ray workers); a
        record of the Ray workers that made it names them and the segments run again."""
        self.announce(task)
        try:
            with self.attempt(task) as attempt:
                self.begin(task)
                executor = backend.video_executor(self.prepared, self.stop)
                stylise_clip(executor, self.settings, task.item.path, task.out_path,
                             keep_frames=self.options.keep_frames, progress=self.progress, stop=self.stop,
                             comment=self.origin(task))
                where = executor.identities()
                if where:
                    task.record.made_on(", ".join(where["nodes"]), ", ".join(where["workers"]), where["retries"])
        except (KeyboardInterrupt, Interrupted) as e:
            self.interrupted([task], e)
            return
        if not attempt.failed:
            self.done(task)

    def run_images(self, tasks: list[Task]) -> None:
        """Read every image of a unit first, then stylise them (image_job.stylise_unit: those of
        one working size together, in passes up to the batch limit).

        A file that cannot be read (corrupt, gone, output folder not writable) fails alone here,
        before any optimisation; the others go on as a batch. Pictures are kept at their working
        size only, so a unit of large photos costs little memory while it waits."""
        self.prepared()
        try:
            ready: list[Task] = []
            for task in tasks:
                self.announce(task)
                with self.attempt(task) as attempt:
                    self.begin(task)
                    picture = read_image(task.item.path)
                    check_working_size(task.item.path, picture.size, self.settings.size)
                    task.picture = at_working_size(picture, self.settings.size)
                if not attempt.failed:
                    ready.append(task)
            self._stylise(ready)
        except (KeyboardInterrupt, Interrupted) as e:
            self.interrupted([t for t in tasks if not t.record.status], e)
        finally:
            for task in tasks:
                task.picture = None

    def _stylise(self, tasks: list[Task]) -> None:
        """Stylise the read pictures pass by pass, writing each pass's outputs; a stop request or
        --max-runtime is looked at after every pass that leaves pictures to do."""
        left = set(range(len(tasks)))
        for done in image_job.stylise_unit(self.prepared(), [t.picture for t in tasks], self.limits, self.batch,
                                           self.progress):
            styled: list[Picture | BaseException] = (list(done.styled) if isinstance(done.styled, list)
                                                     else [done.styled] * len(done.members))
            for k, picture in zip(done.members, styled):
                tasks[k].seconds += done.seconds
                self._write(tasks[k], picture)
                left.discard(k)
            if left and self.halted():
                for k in sorted(left):
                    self.not_started(tasks[k])
                return

    def _write(self, task: Task, picture: Picture | BaseException) -> None:
        """Write one stylised picture (atomic: a temp file renamed into place), or fail the file
        with the error its pass raised."""
        if isinstance(picture, BaseException):
            self.fail(task, picture)
            return
        with self.attempt(task) as attempt:
            # The source is read again here, not held: a unit of large photos waits at working size.
            t0 = time.perf_counter()
            source = read_image(task.item.path)
            output = deliver_still(self.prepared(), picture, source, self.progress)
            task.seconds += time.perf_counter() - t0  # the detail step's (minutes with --detail polish)
            write_image(task.out_path, output, record=self.origin(task))
        if not attempt.failed:
            self.done(task)


def record_failure(record: FileRecord, reason: str, seconds: float, summary: FolderSummary,
                   progress: Callback) -> None:
    record.failed(reason, seconds)
    summary.failed += 1
    progress(FileDone(record["path"], "failed", seconds, error=reason, output=record["output"],
                      worker=record.get("worker", ""), node=record.get("node", "")))


