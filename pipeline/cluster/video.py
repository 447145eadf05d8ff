"""One clip on the Ray workers: the executor of video.orchestrator for a cluster.

The orchestrator plans, dispatches, stores and joins as it does for this process or --devices.
What differs is transport: a segment call carries the frame range, its anchor (the previous
frame's output) and the style targets; the worker decodes its own range from the input, stylises
and encodes it, and sends back the encoded segment and the few raw frames a seam or the next
segment's anchor needs. Per frame, the driver does nothing: it writes each returned segment into
the resume folder. A lost worker costs the segment in hand, which the pool runs again elsewhere.

The input reaches the workers where they are: read in place when its path holds the same file on
the workers (the same machine, or a shared volume), else sent once through the object store and
written once per node.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

from ..errors import ProcessingError
from ..progress import Callback, FrameDone, Message
from ..style_targets import StyleSet
from ..video.clip import Clip, ScanPart, merge_scans, scan, scan_ranges
from ..video.contract import ExecutorBase
from ..video.segment import SegmentOutput, SegmentTask
from ..video.workdir import WorkDir
from .pool import Pool


class RayExecutor(ExecutorBase):
    """Segments as calls of the pool's workers, one in hand per worker (video/contract.py). A
    segment comes back as bytes (SegmentOutput.data), which the orchestrator stores."""

    def __init__(self, pool: Pool, styles: StyleSet):
        self.pool, self.styles = pool, styles
        self.workers = pool.size
        self.in_flight: list[SegmentTask] = []
        self.stopping = False
        self.workers_seen: set[str] = set()
        self.nodes: set[str] = set()
        self.retries = 0
        self.sources: dict[str, list | None] = {}  # input sha256 -> how the workers read it (_source)
        self.reported: dict[str, set[int]] = {}  # segment in hand -> its frames reported while it ran
        self.token = uuid.uuid4().hex  # this clip's frame events (the pool's box serves a folder's clips)
        self.events_taken = 0.0  # when the workers' frame events were last taken (time.monotonic)

    def describe(self) -> str:
        return f"{self.workers} Ray workers"

    def estimate(self, clip: Clip, work: WorkDir, scores: list[float], done: int, progress: Callback):
        """The estimate from a timed trial on one worker (the driver has no device of the workers'
        kind), the work shared by all of them; None, with a warning, when the trial fails."""
        self._call("estimate", self.pool.targets_ref(self.styles, work.size), clip,
                   self._source(clip.path, work.key["input"], progress), scores, done, self.workers)
        got = None
        while got is None:
            got = self.pool.next_result(1.0)
        _, value = got
        if isinstance(value, BaseException):
            progress(Message(f"{clip.path}: no estimate (the trial on a worker failed: {value})", level="warning"))
            return None
        return value

    def _call(self, method: str, *args) -> None:
        self.pool.submit(method, *args, tag=(method,))  # the pool tells calls apart by identity

    def scan(self, clip: Clip, work: WorkDir, progress: Callback) -> tuple:
        """The scan (video.clip.scan) split over the workers, a range of the clip each, decoded on
        their own nodes, so that a film's count and scene cuts take the time of one range, not of
        the whole; serially here for a short clip, or when the ranges do not fit together."""
        ranges = scan_ranges(clip, self.workers)
        if len(ranges) == 1:
            return scan(clip)
        source = self._source(clip.path, work.key["input"], progress)
        tags = [("scan", number) for number in range(len(ranges))]  # the pool tells calls apart by identity
        for tag, (first, stop) in zip(tags, ranges):
            self.pool.submit("scan", clip, source, first, stop, tag=tag)
        parts: dict[int, ScanPart] = {}
        failed: BaseException | None = None
        while len(parts) < len(ranges) and failed is None:
            got = self.pool.next_result(1.0)
            if got is None:
                continue
            call, value = got
            if isinstance(value, BaseException):
                failed = value
            else:
                parts[call.tag[1]] = value[1]
        merged = None if failed is not None else merge_scans(clip, [parts[k] for k in range(len(ranges))])
        if merged is None:
            self.pool.abandon(tags)
            why = f"a range failed ({failed})" if failed is not None else "the ranges did not fit together"
            progress(Message(f"{clip.path}: the scan split over the workers: {why}; scanning here instead",
                             level="warning", code="ray.scan_here"))
            return scan(clip)
        progress(Message(f"counted {merged[0]} frames in {len(ranges)} ranges on the Ray workers",
                         code="ray.scan_split", fields={"frames": merged[0], "ranges": len(ranges)}))
        return merged

    def start(self, clip: Clip, work: WorkDir, suffix: str, report) -> None:
        self.clip, self.work, self.suffix, self.report = clip, work, suffix, report
        self.targets = self.pool.targets_ref(self.styles, work.size)

        def progress(event) -> None:
            report("", event)

        self.source = self._source(clip.path, work.key["input"], progress)

    def _source(self, path: Path, sha: str, progress: Callback):
        """None when the workers read the input where it is (checked on one of them: the same
        sha256, which the work folder's key already holds), else [sha256, object ref] of its bytes,
        put into the object store once (the scan's and the segments' calls share it)."""
        if sha not in self.sources:
            if self.pool.reads_same_file(path, sha):
                self.sources[sha] = None
            else:
                progress(Message(f"{path}: not readable on the Ray workers; sending it once through the object store",
                                 code="ray.input_sent", fields={"path": str(path)}))
                self.sources[sha] = [sha, self.pool.put(path.read_bytes())]
        return self.sources[sha]

    @property
    def free(self) -> int:
        return self.workers - len(self.in_flight)

    @property
    def busy(self) -> bool:
        return bool(self.in_flight) and not self.stopping

    def submit(self, task: SegmentTask) -> None:
        self.in_flight.append(task)
        self.reported[task.segment.name] = set()
        self.pool.submit("segment", self.targets, self.clip, self.source, task, self.work.key, self.suffix,
                         (self.pool.events, self.token), tag=task)

    def _report_frames(self) -> None:
        """Relay the frames the workers finished since the last look (every half second at most)."""
        if time.monotonic() - self.events_taken < 0.5:
            return
        self.events_taken = time.monotonic()
        for token, name, index, seconds, loss in self.pool.take_events():
            reported = self.reported.get(name) if token == self.token else None
            if reported is not None and index not in reported:  # a retried segment's frames count once
                reported.add(index)
                self.report("", FrameDone(index, None, seconds, loss))

    def next(self, timeout: float) -> SegmentOutput | None:
        self._report_frames()
        got = self.pool.next_result(timeout)
        if got is None:
            return None
        call, value = got
        task: SegmentTask = call.tag
        self.in_flight.remove(task)
        self._report_frames()
        reported = self.reported.pop(task.segment.name, set())
        where = f"segment {task.segment.first + 1}-{task.segment.stop}"
        if isinstance(value, BaseException):
            raise ProcessingError(f"{where} failed: {value}")
        identity, data, output = value
        if call.retries:
            self.report("", Message(f"{where} done after {call.retries} lost worker(s), on {identity['worker']}",
                                    level="warning", code="ray.segment_retried",
                                    fields={"segment": [task.segment.first + 1, task.segment.stop],
                                            "retries": call.retries, "worker": identity["worker"]}))
        self.workers_seen.add(identity["worker"])
        self.nodes.add(identity["node"])
        self.retries += call.retries
        output.data = data  # stored by the orchestrator, the resume folder's one writer of segments
        for index, seconds, loss in output.stylised:  # those whose events were late or lost
            if index not in reported:
                self.report("", FrameDone(index, None, seconds, loss))
        return output

    def stop(self) -> None:
        """A stop request: the segments in hand are given up at close() (a stop costs at most those)."""
        self.stopping = True

    def kill(self) -> None:
        pass  # the pool's actors are the cluster's: Cluster.close() stops them

    def identities(self) -> dict:
        return dict(workers=tuple(sorted(self.workers_seen)), nodes=tuple(sorted(self.nodes)), retries=self.retries)

    def close(self) -> None:
        """Give up the segments in hand (stopped, or another segment failed); the pool's workers
        stay for the job's next file."""
        self.pool.abandon(self.in_flight)
        self.in_flight = []
        self.reported.clear()

