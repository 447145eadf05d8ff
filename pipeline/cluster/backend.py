"""The Ray backend (--engine ray): a job's work on the cluster's workers (backend.py's contract).

The cluster is joined when the backend is built (a bad address fails before any work) and its
workers start at the first unit (a rerun with nothing to do starts none). A clip's segments run
as calls of the workers (video.py); a folder's units of images go to a worker as file bytes and
come back as encoded outputs, several units at once (one per worker), and this process, the only
writer, puts each output in place atomically. A single image is a unit of one file.

The walk, the plan, the units, the manifest, the lock and the report are the folder job's, as is
the bookkeeping of each file (FolderJob.begin / attempt / done / fail). Stopping: no unit starts
after a stop request or --max-runtime; the units in flight finish and are written.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..backend import Prepare, UnitJob
from ..errors import InputError, ProcessingError
from ..files import atomic_write_bytes
from ..image_job import ImageOutcome
from ..media.images import header_size, output_format, with_record, working_size
from ..progress import Callback, Message, StopRequest
from ..settings import RunOptions, Settings
from .pool import Call, Cluster, Pool
from .video import RayExecutor


class RayBackend:
    """A job on the Ray workers of one cluster, joined here."""

    def __init__(self, options: RunOptions, settings: Settings, progress: Callback, *, worker: type | None = None):
        self.cluster = Cluster(options, settings, progress, **({"worker": worker} if worker else {}))

    def image_batch(self) -> int:
        return self.cluster.image_batch()

    def image_units(self, job: UnitJob) -> RayUnits:
        return RayUnits(job, self.cluster)

    def video_executor(self, prepared: Prepare, stop: StopRequest) -> RayExecutor:
        styles = prepared().styles  # the driver's: the targets are computed here, once
        return RayExecutor(self.cluster.pool(styles), styles)

    def stylise_image(self, prepared: Prepare, input_path: Path, output_path: Path,
                      progress: Callback) -> ImageOutcome:
        """A unit of one file on one of the workers, the output written here atomically. The worker
        sends back the total loss only: the outcome's content and style losses are NaN."""
        started = time.perf_counter()
        styles = prepared().styles
        pool, settings = self.cluster.pool(styles), self.cluster.settings
        data = _input_bytes(Path(input_path))
        header = header_size(input_path)
        targets = pool.targets_ref(styles, working_size(header, settings.size) if header else None)
        pool.submit("images", targets, [(str(input_path), data)], output_format(Path(output_path)), 1)
        got = None
        while got is None:
            got = pool.next_result(0.5)
        _, value = got
        if isinstance(value, BaseException):
            raise ProcessingError(f"{input_path}: {value}")
        identity, [(status, payload, _seconds, _loss)] = value
        if status == "input":
            raise InputError(input_path, payload)
        if status != "done":
            raise ProcessingError(f"{input_path}: {payload}")
        atomic_write_bytes(Path(output_path), payload)
        progress(Message(f"stylised on Ray worker {identity['worker']} ({identity['node']})", code="ray.image_done",
                         fields={"worker": identity["worker"], "node": identity["node"]}))
        return ImageOutcome(Path(output_path), float("nan"), float("nan"), settings.iterations,
                            time.perf_counter() - started)

    def close(self) -> None:
        self.cluster.close()


class RayUnits:
    """A folder job's units of images on the cluster's workers, one unit in hand per worker."""

    def __init__(self, job: UnitJob, cluster: Cluster):
        self.job, self.cluster = job, cluster
        self._pool: Pool | None = None

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            styles = self.job.prepared().styles  # the driver's: targets computed here, once
            self._pool = self.cluster.pool(styles)
        return self._pool

    @property
    def room(self) -> bool:
        return self._pool is None or self._pool.has_idle

    def opening(self, files: int, units: int) -> None:
        # No timed trial here: the driver's speed says nothing of the workers'; the lines of files
        # done give the rate.
        self.job.progress(Message(f"{files} file(s) in {units} unit(s) for the Ray workers"))

    def first(self, tasks: list[Any]) -> None:
        pass

    def wait(self) -> None:
        if self._pool is not None and self._pool.busy:
            got = self._pool.next_result(0.5)
            if got is not None:
                self._take(*got)

    def drain(self) -> None:
        while self._pool is not None and self._pool.busy:
            self.wait()

    def abandon(self, exc: BaseException) -> None:
        if self._pool is not None:
            calls = [*self._pool.running.values(), *self._pool.waiting]
            self.job.interrupted([t for call in calls for t in call.tag], exc)

    def submit(self, unit: list[Any]) -> None:
        """Begin each file (manifest, output folder) and read its bytes; send those that could be."""
        sent: list[tuple[Any, bytes]] = []
        for task in unit:
            self.job.announce(task)
            with self.job.attempt(task) as attempt:
                self.job.begin(task)
                data = _input_bytes(task.item.path)
            if not attempt.failed:
                sent.append((task, data))
        if not sent:
            return
        styles = self.job.prepared().styles
        header = header_size(sent[0][0].item.path)
        targets = self.pool.targets_ref(styles, working_size(header, self.job.settings.size) if header else None)
        ext = output_format(sent[0][0].out_path)
        self.pool.submit("images", targets, [(str(t.item.path), data) for t, data in sent], ext, len(sent),
                         tag=[t for t, _ in sent])

    def _take(self, call: Call, value) -> None:
        """Put a unit's outputs in place (atomically) and record each file."""
        tasks: list[Any] = call.tag
        if isinstance(value, BaseException):
            for task in tasks:
                self._where(task, call, None)
                self.job.fail(task, value)
            return
        identity, results = value
        for task, (status, payload, seconds, _loss) in zip(tasks, results):
            task.seconds += seconds
            self._where(task, call, identity)
            if status == "input":
                self.job.fail(task, InputError(task.item.path, payload))
                continue
            if status != "done":
                self.job.fail(task, ProcessingError(payload))
                continue
            with self.job.attempt(task) as attempt:
                record = self.job.origin(task)
                atomic_write_bytes(task.out_path, with_record(payload, output_format(task.out_path), record))
            if not attempt.failed:
                self.job.done(task)

    @staticmethod
    def _where(task: Any, call: Call, identity: dict | None) -> None:
        """The report's record of which worker made the file, and of lost workers retried."""
        task.record.made_on(identity["node"] if identity else None, identity["worker"] if identity else None,
                            call.retries, call.lost)


def _input_bytes(path: Path) -> bytes:
    """An input file's bytes, for a worker; InputError naming it when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from None
