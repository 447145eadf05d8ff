"""The warm-start chain over a stream of video frames (Ruder, Dosovitskiy & Brox 2016), with resume.

Per frame t:
  * t = 0, a scene cut, or --independent: a full coarse-to-fine optimisation from the content;
  * otherwise: start from the previous *stylised* frame warped into frame t by optical flow (DIS on
    the input frames), with the current content where the forward-backward check distrusts the warp;
    fewer iterations; a temporal loss to the warped previous output, masked the same way.
With --batch B, B consecutive warm frames form one window optimised as one batch: each starts from
the last finished output warped to it, with temporal losses to that anchor and between neighbours
(docs/design.md says why this design over segment streams).

Every finished frame is saved (PNG, lossless) in a work folder beside the output, so a rerun after
Ctrl-C, SIGTERM or kill -9 replays the saved frames into a fresh encoder and goes on from the last.
"""
from __future__ import annotations

import json
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import flow
from .engine import Engine
from .errors import InputError, Interrupted, OutputError, ProcessingError
from .image_job import check_output, initial_images, to_rgb, to_tensor
from .media.images import Picture, fit_long_side, read_image, write_image
from .media.video import TruncatedVideoError, VideoInfo, VideoWriter, probe, read_frames
from .color import luminance, recombine
from .optimize import Temporal, optimise, stylise, warp_batch
from .progress import NEVER_STOP, Callback, FrameDone, Message, StopRequest, ignore
from .settings import RUN_ONLY_FIELDS, Settings, file_sha256
from .style_targets import StyleSet

WORK_VERSION = 1


@dataclass
class VideoOutcome:
    output: Path
    frames: int
    resumed_from: int
    seconds: float


def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(h, w) with the long side scaled to long_side and both even (yuv420p needs even sizes)."""
    h, w = fit_long_side((height, width), long_side)
    return max(2, h - h % 2), max(2, w - w % 2)


class WorkDir:
    """Finished frames of one (input, settings) pair: `.NAME.nstvid-work/` beside the output.

    meta.json holds the key (input content hash, settings hash, style content hashes); a mismatch
    means the saved frames belong to another job, and the folder is emptied.
    """

    def __init__(self, output: Path, key: dict):
        self.path = output.with_name(f".{output.name}.nstvid-work")
        self.key = key

    def open(self) -> str:
        """Make the folder ready; return why it starts fresh, or '' (kept or new)."""
        meta = self.path / "meta.json"
        reason = ""
        if meta.is_file():
            try:
                old = json.loads(meta.read_text())
            except (OSError, ValueError):
                old = {}
            if old == self.key:
                return ""
            changed = [k for k in self.key if old.get(k) != self.key.get(k)]
            reason = f"{', '.join(changed) or 'work folder'} changed since the interrupted run"
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(self.key, indent=1))
        return reason

    def frame_path(self, index: int) -> Path:
        return self.path / f"frame_{index:06d}.png"

    def lead_path(self, index: int) -> Path:
        """A lead-in frame of a --devices worker: its own chain's output for a frame that the
        previous worker owns, kept for the cross-fade between the two (video_workers)."""
        return self.path / f"lead_{index:06d}.png"

    def saved_indices(self) -> set[int]:
        """Indices of the saved frames (a half-written frame is never named frame_*.png). Not always
        consecutive: with --devices, several workers fill the clip at once."""
        return {int(p.stem[6:]) for p in self.path.glob("frame_*.png") if p.stem[6:].isdigit()}

    def save(self, index: int, rgb_u8: np.ndarray, *, lead: bool = False) -> Path:
        path = self.lead_path(index) if lead else self.frame_path(index)
        write_image(path, Picture(to_float(rgb_u8)))  # atomic: whole or absent
        return path

    def check_room(self, sample: Path, frames: int) -> None:
        """Fail now, not at 3 a.m., if `frames` more frames the size of the saved `sample` (plus the
        encoded video, well under a tenth of the PNGs at crf 18) will not fit on this disk."""
        need = sample.stat().st_size * frames * 1.1
        free = shutil.disk_usage(self.path).free
        if need > free:
            raise OutputError(self.path, f"disk too full: the resume frames need about {_bytes(need)} more "
                                         f"({frames} frames) and {_bytes(free)} is free; free some space "
                                         f"or use a smaller --size, then run again to resume")

    def load(self, index: int, *, lead: bool = False) -> np.ndarray:
        return to_u8(read_image(self.lead_path(index) if lead else self.frame_path(index)).rgb)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _bytes(n: float) -> str:
    """12 KB, 310 MB, 5.6 GB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1e3:.0f} KB"


def to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def to_float(rgb_u8: np.ndarray) -> np.ndarray:
    return rgb_u8.astype(np.float32) / 255.0


@dataclass
class Step:
    """Consecutive input frames stylised together, with everything about them that depends on the
    input frames alone, so that it can be computed ahead of the optimisation (see FramePipeline).

    how: "full" (first frame of a chain, or --independent), "scene cut" (full, after a cut) or
    "warm" (started from the previous output warped by the flow).
    For "warm" steps, per frame k (all (H, W, 2) float32 pixels or (H, W) float32 [0, 1]):
      to_anchor[k]: backward flow from frame k to the anchor (the input frame of the last output);
      anchor_mask[k]: where that warp is trusted (forward-backward check);
      to_neighbour[k], neighbour_mask[k]: the same between frame k and frame k-1 of the step
      (zeros for k = 0).
    """

    how: str
    frames: list[np.ndarray]
    to_anchor: list[np.ndarray] | None = None
    anchor_mask: list[np.ndarray] | None = None
    to_neighbour: list[np.ndarray] | None = None
    neighbour_mask: list[np.ndarray] | None = None


def plan_steps(settings: Settings, anchor: np.ndarray | None, frames: list[np.ndarray]) -> list[Step]:
    """Split consecutive input frames (H, W, 3) uint8 into steps and compute their flows.

    anchor: the input frame whose stylised output the chain holds, or None when no chain is running
    (the first frame, or a resumed piece before its first frame). Frames that start a chain get a
    full optimisation; a run of frames between scene cuts is one warm step (window batching).
    """
    if settings.independent:
        return [Step("full", frames)]
    steps, i = [], 0
    while i < len(frames):
        if anchor is None:
            steps.append(Step("full", frames[i:i + 1]))
        elif flow.is_scene_cut(anchor, frames[i], threshold=settings.scene_cut_threshold):
            steps.append(Step("scene cut", frames[i:i + 1]))
        else:
            j = i + 1
            while j < len(frames) and not flow.is_scene_cut(frames[j - 1], frames[j],
                                                            threshold=settings.scene_cut_threshold):
                j += 1
            steps.append(warm_step(settings, anchor, frames[i:j]))
            i = j
            anchor = frames[i - 1]
            continue
        anchor = frames[i]
        i += 1
    return steps


def warm_step(settings: Settings, anchor: np.ndarray, frames: list[np.ndarray]) -> Step:
    """The flows of a warm step: each frame to the anchor, and each to its neighbour in the step."""
    h, w = frames[0].shape[:2]
    zero_flow, ones = np.zeros((h, w, 2), np.float32), np.ones((h, w), np.float32)
    step = Step("warm", frames, [], [], [], [])
    for k, frame in enumerate(frames):
        if settings.flow:
            backward = flow.compute_flow(frame, anchor)  # k -> anchor, on k's grid
            forward = flow.compute_flow(anchor, frame)  # anchor -> k, on the anchor's grid
            step.to_anchor.append(backward)
            step.anchor_mask.append(flow.reliability(forward, backward))
        else:
            step.to_anchor.append(zero_flow)
            step.anchor_mask.append(ones)
        if k == 0:
            step.to_neighbour.append(zero_flow)
            step.neighbour_mask.append(np.zeros((h, w), np.float32))
        elif settings.flow:
            backward = flow.compute_flow(frame, frames[k - 1])
            step.to_neighbour.append(backward)
            step.neighbour_mask.append(flow.reliability(flow.compute_flow(frames[k - 1], frame), backward))
        else:
            step.to_neighbour.append(zero_flow)
            step.neighbour_mask.append(ones)
    return step


class Chain:
    """State carried from frame to frame: the previous input and output frames."""

    def __init__(self, engine: Engine, styles: StyleSet):
        self.engine = engine
        self.styles = styles
        self.prev_input: np.ndarray | None = None  # (H, W, 3) uint8
        self.prev_output: np.ndarray | None = None  # (H, W, 3) float32 [0, 1]

    @property
    def anchor(self) -> np.ndarray | None:
        """The input frame a next warm step is planned against (None: the chain starts afresh)."""
        return None if self.prev_output is None else self.prev_input

    def step(self, frame: np.ndarray) -> tuple[np.ndarray, float, str]:
        """Stylise one input frame (H, W, 3) uint8 -> (output float32 [0, 1], loss, how started)."""
        return self.window([frame])[0]

    def window(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, float, str]]:
        """Stylise consecutive input frames (H, W, 3) uint8, planned and run here, in line."""
        results = []
        for step in plan_steps(self.engine.settings, self.anchor, frames):
            results += self.run(step)
        return results

    def run(self, step: Step) -> list[tuple[np.ndarray, float, str]]:
        """Stylise one planned step -> per frame (output (H, W, 3) float32 [0, 1], loss, how)."""
        if step.how == "warm":
            return self._warm(step)
        s = self.engine.settings
        content = torch.cat([to_tensor(to_float(f)) for f in step.frames])
        result = stylise(self.engine, self.styles, content, initial_images(self.engine, content),
                         iterations=s.iterations, scales=s.scales)
        return self._finish(step, result)

    def _warm(self, step: Step) -> list[tuple[np.ndarray, float, str]]:
        """Window batching: frames t..t+B-1 each start from the last finished output (frame t-1)
        warped to them, with a temporal loss to that anchor and to their neighbour in the window."""
        s = self.engine.settings
        h, w = step.frames[0].shape[:2]
        content = torch.cat([to_tensor(to_float(f)) for f in step.frames])
        warped_t = torch.cat([to_tensor(flow.warp(self.prev_output, f)) for f in step.to_anchor])
        mask_t = torch.from_numpy(np.stack(step.anchor_mask))[:, None]
        # Disoccluded pixels start from the content, as Ruder et al. do, not from a smeared warp.
        init = mask_t * warped_t + (1 - mask_t) * content
        target = content
        if s.preserve_colors:
            warped_t, init, target = luminance(warped_t), luminance(init), luminance(content)
        temporal = Temporal(warped_t, mask_t,
                            torch.from_numpy(np.stack(step.to_neighbour)).permute(0, 3, 1, 2).contiguous(),
                            torch.from_numpy(np.stack(step.neighbour_mask))[:, None])
        result = optimise(self.engine, init, target, self.styles.targets((h, w)),
                          iterations=s.frame_iterations, temporal=temporal)
        if len(step.frames) > 1:
            self._settle_last(step, result, target)
        if s.preserve_colors:
            result.images = recombine(result.images, content)
        return self._finish(step, result)

    def _settle_last(self, step: Step, result, target: torch.Tensor) -> None:
        """Refine the window's last frame alone, held to its finished neighbour, in place.

        It is the next window's anchor, and it started from a warp over the whole window (wider
        newly revealed strips, which start from the content), so after the window it is the least
        settled frame; the next window's first frame then moved away from it, and window boundaries
        had 1.42x batch 1's E_warp (worst pair 1.58x). frame_iterations / 2 more iterations on this
        one frame, with the temporal loss to frame k-1's output as in the sequential chain, brought
        that to 1.20x (worst 1.41x) in a 32-frame run at 128 px (docs/design.md)."""
        s = self.engine.settings
        k = len(step.frames) - 1
        to_previous = torch.from_numpy(step.to_neighbour[k]).permute(2, 0, 1)[None].contiguous()
        warped = warp_batch(result.images[k - 1:k], to_previous)
        mask = torch.from_numpy(step.neighbour_mask[k])[None, None]
        h, w = target.shape[-2:]
        last = optimise(self.engine, result.images[k:], target[k:], self.styles.targets((h, w)),
                        iterations=max(1, s.frame_iterations // 2), temporal=Temporal(warped, mask))
        for mine, settled in ((result.images, last.images), (result.content, last.content),
                              (result.style, last.style), (result.total, last.total)):
            mine[k] = settled[0]

    def _finish(self, step: Step, result) -> list[tuple[np.ndarray, float, str]]:
        outs = [to_rgb(image) for image in result.images]
        self.prev_input, self.prev_output = step.frames[-1], outs[-1]
        return [(out, float(loss), step.how) for out, loss in zip(outs, result.total)]

    def replay(self, frame: np.ndarray, saved: np.ndarray) -> None:
        """Resume: take a saved output (H, W, 3) uint8 as if it had just been computed."""
        self.prev_input, self.prev_output = frame, to_float(saved)


def pick_batch(engine: Engine, styles: StyleSet, h: int, w: int, progress: Callback = ignore) -> int:
    """--batch N, or auto: 1 on the CPU (no gain there); on CUDA, the batch with the best frames/s in
    a short trial of 1, 2, 4, 8 and 16 frames, stopping at the first that runs out of memory."""
    s = engine.settings
    if s.batch > 0:
        return s.batch
    if engine.device.type != "cuda":
        return 1
    targets = styles.targets((h, w))
    best, best_rate, rates = 1, 0.0, []
    for b in (1, 2, 4, 8, 16):
        images = torch.rand(b, 3, h, w, device=engine.device)
        try:
            optimise(engine, images, images, targets, iterations=2)  # warm-up
            torch.cuda.synchronize(engine.device)
            t = time.perf_counter()
            optimise(engine, images, images, targets, iterations=3)
            torch.cuda.synchronize(engine.device)
        except torch.OutOfMemoryError:
            break
        finally:
            del images
            torch.cuda.empty_cache()
        rate = b / (time.perf_counter() - t)
        rates.append(f"{b}: {rate:.1f}")
        if rate > best_rate:
            best, best_rate = b, rate
    progress(Message(f"batch {best} (trial frames/s by batch: {', '.join(rates)})"))
    return best


@dataclass
class Replay:
    """A frame already stylised by an earlier run: its input (H, W, 3) uint8 and saved output."""

    index: int
    frame: np.ndarray
    saved: np.ndarray  # (H, W, 3) uint8


@dataclass
class Window:
    """Frames to stylise, planned into steps; indices[k] is the clip index of the k-th frame."""

    indices: list[int]
    steps: list[Step]


@dataclass
class End:
    """The input is exhausted: frames decoded, and the truncation error if it ended early."""

    frames_read: int
    truncated: TruncatedVideoError | None = None


def produce(settings: Settings, reader, saved: dict[int, Path], batch: Callable[[], int], *,
            start: int = 0, stop_at: int | None = None) -> Iterator[Replay | Window | End]:
    """Decode, load saved frames and plan windows: everything the optimisation waits for that
    depends on the input alone. saved: {frame index: its saved output}. Frames before `start` are
    skipped; decoding stops at `stop_at`."""
    pending: list[tuple[int, np.ndarray]] = []
    anchor: np.ndarray | None = None  # the input of the last frame handed on, None: no chain yet

    def window() -> Window:
        nonlocal anchor
        frames = [f for _, f in pending]
        planned = Window([i for i, _ in pending], plan_steps(settings, anchor, frames))
        anchor = frames[-1]
        pending.clear()
        return planned

    try:
        try:
            for index, frame in enumerate(reader):
                if index < start:
                    continue
                if stop_at is not None and index >= stop_at:
                    break
                if index in saved:
                    if pending:
                        yield window()
                    yield Replay(index, frame, to_u8(read_image(saved[index]).rgb))
                    anchor = frame
                    continue
                pending.append((index, frame))
                if len(pending) >= batch():
                    yield window()
        except TruncatedVideoError as e:
            if pending:
                yield window()  # the decodable frames are still stylised and written
            yield End(reader.frames_read, e)
            return
        if pending:
            yield window()
        yield End(reader.frames_read)
    finally:
        reader.close()


class Ahead:
    """Runs an iterator on a thread of its own, `depth` items ahead of the consumer (the producer
    half of the pipeline); with threaded=False it is the iterator itself, in line. Errors raised by
    the iterator are raised to the consumer in order."""

    def __init__(self, items: Iterator, *, threaded: bool, depth: int = 2):
        self.items = items
        self.threaded = threaded
        self.closing = threading.Event()
        if threaded:
            self.queue: queue.Queue = queue.Queue(maxsize=depth)
            self.thread = threading.Thread(target=self._fill, name="nstvid-decode", daemon=True)
            self.thread.start()

    def _fill(self) -> None:
        try:
            for item in self.items:
                self._put(("item", item))
                if self.closing.is_set():
                    break
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(("error", e))
        finally:
            self.items.close()  # in this thread: the generator's finally closes the decoder
            self._put(("done", None))

    def _put(self, entry) -> None:
        while not self.closing.is_set():
            try:
                self.queue.put(entry, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        if not self.threaded:
            yield from self.items
            return
        while True:
            kind, value = self.queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        if not self.threaded:
            self.items.close()
            return
        self.closing.set()
        while self.thread.is_alive():
            try:
                self.queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self.thread.join()


class FrameSink:
    """Saves finished frames (the resume store) and passes them to the encoder, on a thread of its
    own so that PNG compression and encoding overlap the next optimisation (threaded=False: in
    line). An error there (disk full, encoder gone) is raised by the next put() or by close()."""

    def __init__(self, work: WorkDir, writer: VideoWriter | None, *, threaded: bool, frames_left: int = 0):
        self.work, self.writer, self.threaded = work, writer, threaded
        self.frames_left = frames_left  # checked against the free disk space at the first save
        self.error: BaseException | None = None
        if threaded:
            self.queue: queue.Queue = queue.Queue(maxsize=32)
            self.thread = threading.Thread(target=self._drain, name="nstvid-encode", daemon=True)
            self.thread.start()

    def put(self, index: int, frame: np.ndarray, *, save: bool, lead: bool = False) -> None:
        """Queue frame `index` (H, W, 3) uint8, in clip order; save=False for replayed frames;
        lead=True for a --devices lead-in frame (saved apart, never encoded here)."""
        if self.error is not None:
            raise self.error
        if self.threaded:
            self.queue.put((index, frame, save, lead))
        else:
            self._handle(index, frame, save, lead)

    def _handle(self, index: int, frame: np.ndarray, save: bool, lead: bool) -> None:
        if save:
            path = self.work.save(index, frame, lead=lead)
            if self.frames_left:
                self.work.check_room(path, self.frames_left)
                self.frames_left = 0
        if self.writer is not None and not lead:
            self.writer.write(frame)

    def _drain(self) -> None:
        while True:
            entry = self.queue.get()
            if entry is None:
                return
            if self.error is None:
                try:
                    self._handle(*entry)
                except BaseException as e:  # noqa: BLE001 - raised in the main thread
                    self.error = e

    def close(self) -> BaseException | None:
        """Wait until every queued frame is saved and encoded; return the error, if any."""
        if self.threaded:
            self.queue.put(None)
            self.thread.join()
        return self.error


def render(engine: Engine, styles: StyleSet, input_path: Path, info: VideoInfo, work: WorkDir,
           writer: VideoWriter | None, *, start: int = 0, keep_from: int = 0, stop_at: int | None = None,
           overlap: bool = True, progress: Callback = ignore, stop: Callable[[], bool] = lambda: False,
           ) -> End:
    """Stylise frames start..stop_at-1 of a clip into the work folder (and the writer, if given).

    Frames start..keep_from-1 are a --devices lead-in: stylised to start the chain and saved apart
    (the previous worker owns them). Frames already in the work folder are replayed, not
    recomputed. With overlap, decoding, flow and loading run one window ahead on one thread and
    saving + encoding behind on another, so the device waits for neither. Returns how the input
    ended.
    """
    s = engine.settings
    h, w = work.key["size"]
    chain = Chain(engine, styles)
    batch = pick_batch(engine, styles, h, w, progress)
    total = max(info.frame_count, 1) if stop_at is None else stop_at

    def current_batch() -> int:
        return batch

    saved = {i: work.frame_path(i) for i in work.saved_indices() if i >= keep_from}
    saved.update({i: work.lead_path(i) for i in range(start, keep_from) if work.lead_path(i).is_file()})
    reader = read_frames(input_path, size=(w, h), info=info)
    feed = Ahead(produce(s, reader, saved, current_batch, start=start, stop_at=stop_at), threaded=overlap)
    sink = FrameSink(work, writer, threaded=overlap, frames_left=max(info.frame_count - len(saved) - 1, 0))
    end = End(0)
    failed = True
    try:
        for item in feed:
            if isinstance(item, End):
                end = item
                continue
            if isinstance(item, Replay):
                chain.replay(item.frame, item.saved)
                sink.put(item.index, item.saved, save=False, lead=item.index < keep_from)
                continue
            indices = iter(item.indices)
            for step in item.steps:
                t0 = time.perf_counter()
                results, batch = run_step(chain, step, batch, progress)
                engine.report(progress)  # e.g. a --compile fallback met inside the step
                seconds = (time.perf_counter() - t0) / len(results)
                for (out, loss, how), index in zip(results, indices):
                    sink.put(index, to_u8(out), save=True, lead=index < keep_from)
                    if how == "scene cut":
                        progress(Message(f"scene cut at frame {index + 1}: full optimisation"))
                    progress(FrameDone(index, max(total, index + 1), seconds, loss))
            if stop():
                break
        failed = False
    finally:
        feed.close()
        error = sink.close()  # finished frames are saved even when this job fails
        if error is not None and not failed:
            raise error
    return end


def run_step(chain: Chain, step: Step, batch: int, progress: Callback) -> tuple[list, int]:
    """chain.run(step), halving the batch and retrying on out-of-memory; never drops a frame.
    Returns (results, the batch size that worked)."""
    try:
        return chain.run(step), batch
    except torch.OutOfMemoryError:
        pass
    engine = chain.engine
    if len(step.frames) == 1:
        h, w = step.frames[0].shape[:2]
        raise ProcessingError(f"one {w}x{h} frame does not fit in {engine.device} memory; "
                              "try a smaller --size")
    batch = max(1, min(batch, len(step.frames)) // 2)
    progress(Message(f"out of memory: batch halved to {batch}, window retried"))
    if engine.device.type == "cuda":
        torch.cuda.empty_cache()
    results = []
    for i in range(0, len(step.frames), batch):
        for part in plan_steps(engine.settings, chain.anchor, step.frames[i:i + batch]):
            done, batch = run_step(chain, part, batch, progress)
            results += done
    return results, batch


def open_work(input_path: Path, output_path: Path, info: VideoInfo, settings: Settings,
              style_hashes: list[str], progress: Callback) -> tuple[WorkDir, int]:
    """The work folder of this (input, settings, styles, size), resumed when it matches; and how
    many frames it already holds."""
    h, w = working_size(info.width, info.height, settings.size)
    key = {"version": WORK_VERSION, "input": file_sha256(input_path),
           "settings": settings.digest(exclude=("crf", "codec") + RUN_ONLY_FIELDS),
           "styles": style_hashes, "size": [h, w]}
    work = WorkDir(output_path, key)
    reason = work.open()
    if reason:
        progress(Message(f"starting fresh: {reason}"))
    saved = work.saved_indices()
    if saved:
        first_missing = next(i for i in range(len(saved) + 1) if i not in saved)
        progress(Message(f"resuming at frame {first_missing + 1}: {len(saved)} frames already stylised"))
    if info.variable_frame_rate:
        progress(Message(f"variable frame rate: resampling to a constant {float(info.fps):.3f} fps "
                         "so duration and audio sync are kept"))
    progress(Message(f"{info.width}x{info.height} at {info.fps} fps -> {w}x{h}, "
                     f"about {info.frame_count} frames"))
    return work, len(saved)


def probe_input(input_path: Path) -> VideoInfo:
    info = probe(input_path)
    if info.width <= 0 or info.height <= 0:
        raise InputError(input_path, "not a readable video (no frame size)")
    return info


def stylise_video(engine: Engine, styles: StyleSet, input_path: Path, output_path: Path, *,
                  overwrite: bool = False, keep_frames: bool = False, progress: Callback = ignore,
                  stop: StopRequest = NEVER_STOP, overlap: bool = True) -> VideoOutcome:
    """Stylise a video file into output_path (same frame count, frame rate and audio).

    overlap=False runs decoding, flow, saving and encoding in line with the optimisation (the
    baseline of bench/pipeline.py)."""
    started = time.perf_counter()
    s = engine.settings
    check_output(input_path, output_path, overwrite)
    info = probe_input(input_path)
    work, resumed = open_work(input_path, output_path, info, s, styles.file_hashes, progress)
    h, w = work.key["size"]
    with VideoWriter(output_path, w, h, info.fps, audio_from=input_path if info.has_audio else None,
                     crf=s.crf, codec=s.codec) as writer:
        end = render(engine, styles, input_path, info, work, writer, overlap=overlap, progress=progress,
                     stop=lambda: bool(stop))
        if stop:
            raise Interrupted(stop.signum)  # inside the with block: the partial output is discarded
    if not keep_frames:
        work.remove()
    if end.truncated is not None:
        raise TruncatedVideoError(input_path, f"input is truncated or damaged: stylised the "
                                              f"{end.frames_read} decodable frames into {output_path}",
                                  frames_read=end.frames_read)
    return VideoOutcome(output_path, end.frames_read, resumed, time.perf_counter() - started)
