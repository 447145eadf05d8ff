"""--devices: one clip on several devices, one worker process each.

The clip is cut into one piece per device. Each worker runs the ordinary warm-start chain
(job.render) over its piece and saves every finished frame in the shared work folder; this
process encodes the frames once, in clip order, as they arrive, and muxes the audio once at the end.

A piece boundary restarts the chain, and two chains settle on different textures for the same frame:
measured in docs/batching.md, a plain seam has 93x the E_warp of the same pair in one chain. So:
  * a boundary is moved to a scene cut when one lies near it (the chain restarts there anyway);
  * otherwise the later worker starts LEAD_IN frames early, and over those frames the two chains'
    outputs are cross-faded, which spreads the texture change over the lead-in instead of one jump.
The exact frame count comes from a fast decode at thumbnail size (never the container's count),
which also gives the scene-cut scores.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import Interrupted, NstvidError, ProcessingError
from ..media.video import VideoWriter
from ..prepare import prepare
from ..progress import NEVER_STOP, Callback, FrameDone, Message, StopRequest, ignore
from ..settings import Settings
from .clip import Clip, open_clip, scan
from .job import VideoOutcome, estimate_video, finish, open_writer, render
from .workdir import WorkDir, open_work

LEAD_IN = 16  # frames a worker starts before its piece when the boundary is not at a scene cut
CUT_SEARCH = 0.25  # look for a scene cut within this fraction of a piece's length of a boundary


@dataclass(frozen=True)
class Piece:
    """Frames keep_from..stop_at-1 belong to this worker; it starts its chain at `start` (a lead-in
    of keep_from - start frames, cross-faded with the previous piece's last frames)."""

    start: int
    keep_from: int
    stop_at: int

    @property
    def lead(self) -> int:
        return self.keep_from - self.start


def split_clip(frames: int, parts: int, cut_scores: list[float], threshold: float,
               lead_in: int = LEAD_IN) -> list[Piece]:
    """Cut `frames` frames into up to `parts` pieces of similar length, at scene cuts where one lies
    within CUT_SEARCH of a piece length of the even boundary. cut_scores[i] is the scene-cut score
    between frames i and i+1."""
    length = frames / parts
    bounds = [0]
    for j in range(1, parts):
        ideal = round(j * length)
        reach = int(CUT_SEARCH * length)
        cuts = [i + 1 for i in range(max(0, ideal - reach - 1), min(frames - 1, ideal + reach))
                if cut_scores[i] > threshold]
        bound = min(cuts, key=lambda c: abs(c - ideal)) if cuts else ideal
        if bounds[-1] < bound < frames:
            bounds.append(bound)
    bounds.append(frames)
    cut_after = {i + 1 for i, score in enumerate(cut_scores) if score > threshold}
    pieces = []
    for previous, keep_from, stop_at in zip([0] + bounds, bounds, bounds[1:]):
        # The lead-in never reaches back past the previous piece's own start.
        lead = 0 if keep_from == 0 or keep_from in cut_after else min(lead_in, keep_from - previous)
        pieces.append(Piece(keep_from - lead, keep_from, stop_at))
    return pieces


def cross_fade(ours: np.ndarray, theirs: np.ndarray | None, piece: Piece, index: int) -> np.ndarray:
    """Frame `index` of the previous piece's chain (ours), blended towards the next piece's lead-in
    (theirs) linearly over the lead-in: (H, W, 3) uint8 in, uint8 out."""
    if theirs is None:
        return ours
    alpha = (index - piece.start + 1) / (piece.lead + 1)
    mixed = (1 - alpha) * ours.astype(np.float32) + alpha * theirs.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def _worker(settings: Settings, worker: int, device: str, clip: Clip, output_path: Path,
            key: dict, piece: Piece, events, stop_event, parent_pid: int, cpu_threads: int) -> None:
    """One worker process: the chain over one piece, frames saved into the shared work folder."""
    # The parent relays Ctrl-C and SIGTERM through stop_event, so the frame in hand is finished.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import torch

    if device == "cpu":
        torch.set_num_threads(cpu_threads)

    def progress(event) -> None:
        if isinstance(event, (Message, FrameDone)):
            events.put(("event", worker, event))

    try:
        engine, styles = prepare(replace(settings, device=device, devices=()), progress)
        end = render(engine, styles, clip, WorkDir(output_path, key), None, start=piece.start,
                     keep_from=piece.keep_from, stop_at=piece.stop_at,
                     progress=progress, stop=lambda: stop_event.is_set() or os.getppid() != parent_pid)
        events.put(("end", worker, end.frames_read))
    except NstvidError as e:
        events.put(("error", worker, f"{e}"))
    except Exception as e:  # noqa: BLE001 - reported by the parent with the device's name
        events.put(("error", worker, f"{type(e).__name__}: {e}"))


class Workers:
    """One spawned worker process per piece, the event queue they report on, and their stop flag."""

    def __init__(self, settings: Settings, clip: Clip, output_path: Path, key: dict, pieces: list[Piece]):
        devices = settings.devices[:len(pieces)]
        cpu_workers = sum(d == "cpu" for d in devices)
        cpu_threads = max(1, (os.cpu_count() or 1) // max(1, cpu_workers))
        context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
        self.events = context.Queue()
        self.stop_event = context.Event()
        self.names = [f"worker {j + 1} ({device})" for j, device in enumerate(devices)]
        self.processes = [
            context.Process(target=_worker, name=f"nstvid {name}", daemon=True,
                            args=(settings, j, device, clip, output_path, key, piece, self.events,
                                  self.stop_event, os.getpid(), cpu_threads))
            for j, (name, device, piece) in enumerate(zip(self.names, devices, pieces))]

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def next_event(self) -> tuple[str | None, int, object]:
        """(kind, worker, value) of the next report, or (None, -1, None) after 0.1 s without one."""
        try:
            return self.events.get(timeout=0.1)
        except queue.Empty:
            return None, -1, None

    def check_alive(self) -> None:
        dead = [p for p in self.processes if p.exitcode not in (None, 0)]
        if dead:
            raise ProcessingError(f"{dead[0].name} died (exit code {dead[0].exitcode})")

    def kill(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()

    def stop_and_join(self) -> None:
        """Ask every worker to save its frame in hand and stop; wait a minute, then kill."""
        self.stop_event.set()
        for process in self.processes:
            if process.pid is not None:
                process.join(timeout=60)
            if process.is_alive():
                process.kill()


class Joiner:
    """Encodes the workers' saved frames once, in clip order, as they arrive; over a lead-in, the
    previous piece's frame is cross-faded with the next worker's lead-in frame."""

    def __init__(self, work: WorkDir, pieces: list[Piece], frames: int, resumed: int, names: list[str],
                 progress: Callback):
        self.work, self.pieces, self.frames, self.names, self.progress = work, pieces, frames, names, progress
        # frame -> the worker whose lead-in it is (that worker fades in over it)
        self.lead_of = {i: j for j, p in enumerate(pieces) for i in range(p.start, p.keep_from)}
        self.ended: set[int] = set()  # workers that finished their piece (or stopped on request)
        self.written = 0
        self.finished = resumed  # frames saved so far, lead-ins not counted

    def take(self, kind: str | None, sender: int, value) -> None:
        """Account for one worker report; a worker's error ends the job."""
        if kind == "event" and isinstance(value, FrameDone):
            if self.lead_of.get(value.index) != sender:
                self.finished += 1
                self.progress(FrameDone(self.finished - 1, self.frames, value.seconds, value.loss))
        elif kind == "event":
            self.progress(Message(f"{self.names[sender]}: {value.text}", value.level))
        elif kind == "error":
            raise ProcessingError(f"{self.names[sender]} failed: {value}")
        elif kind == "end":
            self.ended.add(sender)

    def write_ready(self, writer: VideoWriter) -> None:
        """Encode every frame that is ready, in order; a lead-in frame waits for both chains."""
        while self.written < self.frames and self.work.frame_path(self.written).is_file():
            index = self.written
            fading = self.lead_of.get(index)  # the worker fading in over this frame, if any
            if fading is None:
                writer.write(self.work.load(index))
            else:
                has_lead = self.work.lead_path(index).is_file()
                if not has_lead and fading not in self.ended:
                    return  # its lead-in frame is still to come
                theirs = self.work.load(index, lead=True) if has_lead else None
                writer.write(cross_fade(self.work.load(index), theirs, self.pieces[fading], index))
            self.written += 1

    def stalled(self, workers: int) -> bool:
        """Every worker has ended and the next frame to encode was never saved."""
        return (len(self.ended) == workers and self.written < self.frames
                and not self.work.frame_path(self.written).is_file())


def _describe(pieces: list[Piece], devices: tuple[str, ...], frames: int) -> str:
    return f"{frames} frames on {len(pieces)} devices: " + ", ".join(
        f"{d} {p.keep_from + 1}-{p.stop_at}" + (f" (lead-in {p.lead})" if p.lead else "")
        for d, p in zip(devices, pieces))


def stylise_video_on_devices(settings: Settings, source: Clip | Path, output_path: Path, *,
                             keep_frames: bool = False, progress: Callback = ignore,
                             stop: StopRequest = NEVER_STOP, comment: str | None = None) -> VideoOutcome:
    """Stylise a video (or the part a Clip names) with one worker process per device in
    settings.devices (see the module doc); the caller has checked the devices and the output.
    comment: the output's `comment` tag."""
    started = time.perf_counter()
    clip = source if isinstance(source, Clip) else open_clip(source)
    progress(Message("counting frames and finding scene cuts (a fast decode at thumbnail size)"))
    frames, scores, truncated = scan(clip)
    pieces = split_clip(frames, len(settings.devices), scores, settings.scene_cut_threshold)
    work, resumed = open_work(clip, output_path, settings, progress)
    engine, styles = prepare(settings)  # on the first device, for the estimate's timed trial only
    progress(estimate_video(engine, styles, clip, done=resumed, scores=scores, devices=len(pieces)))
    del engine, styles
    progress(Message(_describe(pieces, settings.devices, frames)))
    workers = Workers(settings, clip, output_path, work.key, pieces)
    joiner = Joiner(work, pieces, frames, resumed, workers.names, progress)
    try:
        with open_writer(output_path, clip, work, settings, comment) as writer:
            workers.start()
            while joiner.written < frames:
                if stop:
                    workers.stop_event.set()
                joiner.take(*workers.next_event())
                joiner.write_ready(writer)
                if joiner.stalled(len(workers.processes)):
                    if stop:
                        break  # every worker saved its frame in hand and stopped: resume next run
                    raise ProcessingError(f"frame {joiner.written + 1} was not produced by any worker")
                workers.check_alive()
            if joiner.written < frames:  # left the loop on a stop request
                raise Interrupted(stop.signum)  # inside the with block: no partial output
    except KeyboardInterrupt:  # a second Ctrl-C: abort now, without waiting for the frames in hand
        workers.kill()
        raise
    finally:
        workers.stop_and_join()  # on any other error the workers save their frame in hand and stop
    finish(clip.path, output_path, work, keep_frames=keep_frames, frames=frames, truncated=truncated)
    return VideoOutcome(output_path, frames, resumed, time.perf_counter() - started)
