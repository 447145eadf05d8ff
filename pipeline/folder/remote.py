"""A folder job's units on Ray workers (--engine ray).

The walk, the plan, the units, the manifest, the lock and the report are those of a local run
(run.py); so is the bookkeeping of each file (FolderJob.begin / attempt / done / fail). What differs: a unit of
images goes to a worker as file bytes and comes back as encoded outputs, several units run at
once (one per worker), and this process, the only writer, puts each output in place atomically.
A video runs alone on all the workers (cluster.video). Stopping: no unit starts after a stop
request or --max-runtime; the units in flight finish and are written.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path

from ..cluster.pool import Call, Cluster, Pool
from ..cluster.video import stylise_video_on_cluster
from ..errors import InputError, Interrupted, ProcessingError
from ..media.images import atomic_write_bytes, header_size, output_format, with_record, working_size
from ..progress import Message
from .job import FolderJob
from .plan import Task


class ClusterRun:
    """Runs a folder job's units on the cluster's workers, one unit in hand per worker."""

    def __init__(self, job: FolderJob, cluster: Cluster):
        self.job, self.cluster = job, cluster
        self._pool: Pool | None = None

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            _, styles = self.job.prepared()  # the driver's styles: targets computed here, once
            self._pool = self.cluster.pool(styles)
        return self._pool

    def run(self, units: list[list[Task]]) -> None:
        queue = deque(units)
        # No timed trial here: the driver's speed says nothing of the workers'; the lines of files
        # done give the rate.
        self.job.progress(Message(f"{sum(len(u) for u in units)} file(s) in {len(units)} unit(s) "
                                  "for the Ray workers"))
        try:
            while queue or (self._pool is not None and self._pool.busy):
                while queue and (self._pool is None or self._pool.has_idle):
                    if self.job.halted():
                        for task in (t for unit in queue for t in unit):
                            self.job.not_started(task)
                        queue.clear()
                        break
                    unit = queue.popleft()
                    if unit[0].item.kind == "video":
                        self._drain()
                        self.job.run_video(unit[0], on_cluster=lambda *a, task=unit[0], **k: self._video(task, *a, **k))
                    else:
                        self._submit(unit)
                if self._pool is not None and self._pool.busy:
                    got = self._pool.next_result(0.5)
                    if got is not None:
                        self._take(*got)
        except (KeyboardInterrupt, Interrupted) as e:  # a second signal: the units in hand are abandoned
            if self._pool is not None:
                calls = [*self._pool.running.values(), *self._pool.waiting]
                self.job.interrupted([t for call in calls for t in call.tag], e)
            raise

    def _drain(self) -> None:
        while self._pool is not None and self._pool.busy:
            got = self._pool.next_result(0.5)
            if got is not None:
                self._take(*got)

    def _video(self, task: Task, path, out_path, **options) -> None:
        """One video on all the workers; its record names them and the chunks run again."""
        _, styles = self.job.prepared()
        outcome = stylise_video_on_cluster(self.pool, styles, self.job.settings, path, out_path, **options)
        task.record.update(node=", ".join(outcome.nodes), worker=", ".join(outcome.workers),
                           retries=outcome.retries)

    def _submit(self, unit: list[Task]) -> None:
        """Begin each file (manifest, output folder) and read its bytes; send those that could be."""
        sent: list[tuple[Task, bytes]] = []
        for task in unit:
            self.job.announce(task)
            with self.job.attempt(task) as attempt:
                self.job.begin(task)
                data = _input_bytes(task.item.path)
            if not attempt.failed:
                sent.append((task, data))
        if not sent:
            return
        _, styles = self.job.prepared()
        header = header_size(sent[0][0].item.path)
        targets = self.pool.targets_ref(styles, working_size(header, self.job.settings.size) if header else None)
        ext = output_format(sent[0][0].out_path)
        self.pool.submit("images", targets, [(str(t.item.path), data) for t, data in sent], ext, len(sent),
                         tag=[t for t, _ in sent])

    def _take(self, call: Call, value) -> None:
        """Put a unit's outputs in place (atomically) and record each file."""
        tasks: list[Task] = call.tag
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
    def _where(task: Task, call: Call, identity: dict | None) -> None:
        """The report's record of which worker made the file, and of lost workers retried."""
        if identity is not None:
            task.record.update(node=identity["node"], worker=identity["worker"])
        task.record["retries"] = call.retries
        if call.lost:
            task.record["lost_workers"] = list(call.lost)


def _input_bytes(path: Path) -> bytes:
    """An input file's bytes, for a worker; InputError naming it when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from None
