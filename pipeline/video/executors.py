"""Where a clip's segments run, on this machine: in this process, or one worker process per device
(--devices). Both keep the executor contract (contract.py), as the Ray executor (cluster/video.py)
does; the orchestrator (orchestrator.py) plans, dispatches, stores and joins for all three.

Progress of the work (FrameDone per frame, messages) reaches the orchestrator through
`report(worker, event)`. Local workers encode each segment into the resume folder and save every
finished frame there, through the WorkDir the orchestrator handed to start() (a --devices worker
gets that same WorkDir), so a stop request or a crash loses nothing: the rerun replays them
(run_segment).
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
from dataclasses import replace

from ..batching import window_batch
from ..errors import NstvidError, ProcessingError
from ..prepare import Prepared, prepare
from ..progress import Estimate, FrameDone, Message, StopRequest
from ..settings import Settings
from .clip import Clip
from .contract import ExecutorBase, Report
from .segment import SegmentOutput, SegmentTask, run_segment
from .stream import estimate_video
from .workdir import WorkDir


class InProcess(ExecutorBase):
    """Segments one after another on this process's engine: the ordinary single-device job. The
    scan is the base's, one decode here (ffmpeg's decoder threads already use the machine's cores)."""

    def __init__(self, prepared: Prepared, stop: StopRequest, *, overlap: bool = True):
        self.prepared, self.stop_request, self.overlap = prepared, stop, overlap
        self.task: SegmentTask | None = None

    def describe(self) -> str:
        return str(self.prepared.engine.device)

    def estimate(self, clip: Clip, work: WorkDir, scores: list[float], done: int, progress) -> Estimate | None:
        return estimate_video(self.prepared, clip, done=done, scores=scores)

    def start(self, clip: Clip, work: WorkDir, suffix: str, report: Report) -> None:
        self.clip, self.work, self.suffix, self.report = clip, work, suffix, report
        self.batch = 0  # decided at the first segment (a timed trial on CUDA), then kept

    @property
    def free(self) -> int:
        return 0 if self.task is not None else 1

    @property
    def busy(self) -> bool:
        return self.task is not None

    def submit(self, task: SegmentTask) -> None:
        self.task = task

    def next(self, timeout: float) -> SegmentOutput | None:
        """Run the segment in hand, here and now (None: a stop request ended it, frames saved)."""
        task, self.task = self.task, None
        if task is None:
            return None

        def progress(event) -> None:
            self.report("", event)

        self.batch = self.batch or window_batch(self.prepared, self.work.size, progress)
        return run_segment(self.prepared, self.clip, task, self.work, self.suffix, overlap=self.overlap,
                           batch=self.batch, progress=progress, stop=lambda: bool(self.stop_request))

    # stop, kill, close: the base's. run_segment looks at the stop request itself, and nothing
    # runs apart from this process.


def _device_worker(settings: Settings, worker: int, device: str, clip: Clip, work: WorkDir,
                   suffix: str, tasks, events, stop_event, parent_pid: int, cpu_threads: int) -> None:
    """One worker process: segments from `tasks` until None, each run with this device's engine;
    outputs and progress go to `events` as (kind, worker, value)."""
    # The parent relays Ctrl-C and SIGTERM through stop_event, so the frame in hand is finished.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import torch

    if device == "cpu":
        torch.set_num_threads(cpu_threads)

    def progress(event) -> None:
        if isinstance(event, (Message, FrameDone)):
            events.put(("event", worker, event))

    def stopped() -> bool:
        return stop_event.is_set() or os.getppid() != parent_pid

    try:
        prepared = prepare(replace(settings, device=device, devices=()), progress)
        batch = window_batch(prepared, work.size, progress)
        for task in iter(tasks.get, None):
            output = run_segment(prepared, clip, task, work, suffix, batch=batch, progress=progress,
                                 stop=stopped)
            events.put(("done", worker, output))
            if output is None:
                return
    except NstvidError as e:
        events.put(("error", worker, f"{e}"))
    except Exception as e:  # noqa: BLE001 - reported by the parent with the device's name
        events.put(("error", worker, f"{type(e).__name__}: {e}"))


class Devices(ExecutorBase):
    """One spawned worker process per device in settings.devices, each with its own engine,
    taking segments from one queue; the frames are saved in the shared work folder. The scan is
    the base's, one decode here."""

    def __init__(self, settings: Settings, stop: StopRequest):
        self.settings, self.stop_request = settings, stop
        self.devices = settings.devices
        self.workers = len(self.devices)
        self.names = [f"worker {j + 1} ({device})" for j, device in enumerate(self.devices)]
        self.processes: list = []
        self.in_flight = 0

    def describe(self) -> str:
        return f"{self.workers} devices ({', '.join(self.devices)})"

    def estimate(self, clip: Clip, work: WorkDir, scores: list[float], done: int, progress) -> Estimate | None:
        prepared = prepare(self.settings)  # on the first device, for the estimate's timed trial only
        try:
            return estimate_video(prepared, clip, done=done, scores=scores, devices=self.workers)
        finally:
            del prepared

    def start(self, clip: Clip, work: WorkDir, suffix: str, report: Report) -> None:
        self.work, self.report = work, report
        cpu_workers = sum(d == "cpu" for d in self.devices)
        cpu_threads = max(1, (os.cpu_count() or 1) // max(1, cpu_workers))
        context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
        self.tasks, self.events, self.stop_event = context.Queue(), context.Queue(), context.Event()
        self.processes = [
            context.Process(target=_device_worker, name=f"nstvid {name}", daemon=True,
                            args=(self.settings, j, device, clip, work, suffix, self.tasks, self.events,
                                  self.stop_event, os.getpid(), cpu_threads))
            for j, (name, device) in enumerate(zip(self.names, self.devices))]
        for process in self.processes:
            process.start()

    @property
    def free(self) -> int:
        return self.workers - self.in_flight

    @property
    def busy(self) -> bool:
        return self.in_flight > 0

    def submit(self, task: SegmentTask) -> None:
        self.in_flight += 1
        self.tasks.put(task)

    def next(self, timeout: float) -> SegmentOutput | None:
        """The next finished segment, relaying progress meanwhile; None after `timeout` without one
        (or for a segment a stop request ended, its frames saved)."""
        if self.stop_request:
            self.stop()
        try:
            kind, worker, value = self.events.get(timeout=timeout)
        except queue.Empty:
            self._check_alive()
            return None
        if kind == "event":
            self.report(self.names[worker], value)
            return None
        if kind == "error":
            raise ProcessingError(f"{self.names[worker]} failed: {value}")
        self.in_flight -= 1
        return value

    def _check_alive(self) -> None:
        dead = [p for p in self.processes if p.exitcode not in (None, 0)]
        if dead:
            raise ProcessingError(f"{dead[0].name} died (exit code {dead[0].exitcode})")

    def stop(self) -> None:
        """Ask every worker to save its frame in hand and stop."""
        self.stop_event.set()

    def kill(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()

    def close(self) -> None:
        """Stop the workers: those still running save their frame in hand; wait a minute, then kill."""
        if not self.processes:
            return
        self.stop_event.set()
        for _ in self.processes:
            self.tasks.put(None)
        for process in self.processes:
            if process.pid is not None:
                process.join(timeout=60)
            if process.is_alive():
                process.kill()

