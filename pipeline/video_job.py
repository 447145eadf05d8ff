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
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import flow
from .engine import Engine
from .errors import InputError, Interrupted, ProcessingError
from .image_job import check_output, initial_images, to_rgb, to_tensor
from .media.images import Picture, fit_long_side, read_image, write_image
from .media.video import TruncatedVideoError, VideoWriter, probe, read_frames
from .color import luminance, recombine
from .optimize import Temporal, optimise, stylise
from .progress import NEVER_STOP, Callback, FrameDone, Message, StopRequest, ignore
from .settings import file_sha256
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

    def open(self) -> tuple[int, str]:
        """Make the folder ready; return (frames already done, why we start fresh or '')."""
        meta = self.path / "meta.json"
        reason = ""
        if meta.is_file():
            try:
                old = json.loads(meta.read_text())
            except (OSError, ValueError):
                old = {}
            if old == self.key:
                return self.count_done(), ""
            changed = [k for k in self.key if old.get(k) != self.key.get(k)]
            reason = f"{', '.join(changed) or 'work folder'} changed since the interrupted run"
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(self.key, indent=1))
        return 0, reason

    def frame_path(self, index: int) -> Path:
        return self.path / f"frame_{index:06d}.png"

    def count_done(self) -> int:
        """Consecutive saved frames from 0 (a half-written frame is never named frame_*.png)."""
        n = 0
        while self.frame_path(n).is_file():
            n += 1
        return n

    def save(self, index: int, rgb_u8: np.ndarray) -> None:
        write_image(self.frame_path(index), Picture(to_float(rgb_u8)))  # atomic: whole or absent

    def load(self, index: int) -> np.ndarray:
        return to_u8(read_image(self.frame_path(index)).rgb)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def to_float(rgb_u8: np.ndarray) -> np.ndarray:
    return rgb_u8.astype(np.float32) / 255.0


class Chain:
    """State carried from frame to frame: the previous input and output frames."""

    def __init__(self, engine: Engine, styles: StyleSet):
        self.engine = engine
        self.styles = styles
        self.prev_input: np.ndarray | None = None  # (H, W, 3) uint8
        self.prev_output: np.ndarray | None = None  # (H, W, 3) float32 [0, 1]

    def step(self, frame: np.ndarray) -> tuple[np.ndarray, float, str]:
        """Stylise one input frame (H, W, 3) uint8 -> (output float32 [0, 1], loss, how started)."""
        return self.window([frame])[0]

    def window(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, float, str]]:
        """Stylise consecutive frames, as one batch where the chain allows it.

        Frames that start a chain (the first, after a scene cut, or all with --independent) get a
        full optimisation; a run of warm frames between cuts is optimised as one batch.
        """
        s = self.engine.settings
        if s.independent:
            return self._full(frames, "full")
        results, i = [], 0
        while i < len(frames):
            if self.prev_output is None:
                results += self._full(frames[i:i + 1], "full")
                i += 1
                continue
            if flow.is_scene_cut(self.prev_input, frames[i], threshold=s.scene_cut_threshold):
                results += self._full(frames[i:i + 1], "scene cut")
                i += 1
                continue
            j = i + 1
            while j < len(frames) and not flow.is_scene_cut(frames[j - 1], frames[j],
                                                            threshold=s.scene_cut_threshold):
                j += 1
            results += self._warm(frames[i:j])
            i = j
        return results

    def _full(self, frames: list[np.ndarray], how: str) -> list[tuple[np.ndarray, float, str]]:
        s = self.engine.settings
        content = torch.cat([to_tensor(to_float(f)) for f in frames])
        result = stylise(self.engine, self.styles, content, initial_images(self.engine, content),
                         iterations=s.iterations, scales=s.scales)
        return self._finish(frames, result, how)

    def _warm(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, float, str]]:
        """Window batching: frames t..t+B-1 each start from the last finished output (frame t-1)
        warped to them, with a temporal loss to that anchor and to their neighbour in the window."""
        s = self.engine.settings
        content = torch.cat([to_tensor(to_float(f)) for f in frames])
        h, w = frames[0].shape[:2]
        warped, masks, n_flows, n_masks = [], [], [], []
        for k, frame in enumerate(frames):
            if s.flow:
                backward = flow.compute_flow(frame, self.prev_input)  # t+k -> t-1, on t+k's grid
                forward = flow.compute_flow(self.prev_input, frame)  # t-1 -> t+k, on t-1's grid
                warped.append(flow.warp(self.prev_output, backward))
                masks.append(flow.reliability(forward, backward))
            else:
                warped.append(self.prev_output)
                masks.append(np.ones((h, w), np.float32))
            if k == 0:
                n_flows.append(np.zeros((h, w, 2), np.float32))
                n_masks.append(np.zeros((h, w), np.float32))
            elif s.flow:
                nb = flow.compute_flow(frame, frames[k - 1])
                n_flows.append(nb)
                n_masks.append(flow.reliability(flow.compute_flow(frames[k - 1], frame), nb))
            else:
                n_flows.append(np.zeros((h, w, 2), np.float32))
                n_masks.append(np.ones((h, w), np.float32))
        warped_t = torch.cat([to_tensor(x) for x in warped])
        mask_t = torch.from_numpy(np.stack(masks))[:, None]
        # Disoccluded pixels start from the content, as Ruder et al. do, not from a smeared warp.
        init = mask_t * warped_t + (1 - mask_t) * content
        target = content
        if s.preserve_colors:
            warped_t, init, target = luminance(warped_t), luminance(init), luminance(content)
        temporal = Temporal(warped_t, mask_t,
                            torch.from_numpy(np.stack(n_flows)).permute(0, 3, 1, 2).contiguous(),
                            torch.from_numpy(np.stack(n_masks))[:, None])
        result = optimise(self.engine, init, target, self.styles.targets((h, w)),
                          iterations=s.frame_iterations, temporal=temporal)
        if s.preserve_colors:
            result.images = recombine(result.images, content)
        return self._finish(frames, result, "warm")

    def _finish(self, frames, result, how) -> list[tuple[np.ndarray, float, str]]:
        outs = [to_rgb(image) for image in result.images]
        self.prev_input, self.prev_output = frames[-1], outs[-1]
        return [(out, float(loss), how) for out, loss in zip(outs, result.total)]

    def replay(self, frame: np.ndarray, saved: np.ndarray) -> None:
        """Resume: take a saved output as if it had just been computed."""
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


def stylise_video(engine: Engine, styles: StyleSet, input_path: Path, output_path: Path, *,
                  overwrite: bool = False, keep_frames: bool = False, progress: Callback = ignore,
                  stop: StopRequest = NEVER_STOP) -> VideoOutcome:
    """Stylise a video file into output_path (same frame count, frame rate and audio)."""
    started = time.perf_counter()
    s = engine.settings
    check_output(input_path, output_path, overwrite)
    info = probe(input_path)
    if info.width <= 0 or info.height <= 0:
        raise InputError(input_path, "not a readable video (no frame size)")
    h, w = working_size(info.width, info.height, s.size)
    key = {"version": WORK_VERSION, "input": file_sha256(input_path),
           "settings": s.digest(exclude=("crf", "codec", "device", "batch")),
           "styles": styles.file_hashes, "size": [h, w]}
    work = WorkDir(output_path, key)
    done, reason = work.open()
    if reason:
        progress(Message(f"starting fresh: {reason}"))
    if done:
        progress(Message(f"resuming at frame {done + 1}: {done} frames already stylised"))
    if info.variable_frame_rate:
        progress(Message(f"variable frame rate: resampling to a constant {float(info.fps):.3f} fps "
                         "so duration and audio sync are kept"))
    progress(Message(f"{info.width}x{info.height} at {info.fps} fps -> {w}x{h}, "
                     f"about {info.frame_count} frames"))
    chain = Chain(engine, styles)
    batch = pick_batch(engine, styles, h, w, progress)
    truncated: TruncatedVideoError | None = None
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        """Stylise the pending frames (halving the batch on out-of-memory), save and encode them."""
        nonlocal batch
        while pending:
            window = pending[:batch]
            t0 = time.perf_counter()
            try:
                results = chain.window([frame for _, frame in window])
            except torch.OutOfMemoryError:
                if batch == 1:
                    raise ProcessingError(f"one {w}x{h} frame does not fit in {engine.device} memory; "
                                          "try a smaller --size") from None
                batch = max(1, batch // 2)
                progress(Message(f"out of memory: batch halved to {batch}, window retried"))
                continue
            seconds = (time.perf_counter() - t0) / len(window)
            for (index, _), (out, loss, how) in zip(window, results):
                out_u8 = to_u8(out)
                work.save(index, out_u8)
                writer.write(out_u8)
                if how == "scene cut":
                    progress(Message(f"scene cut at frame {index + 1}: full optimisation"))
                progress(FrameDone(index, max(info.frame_count, index + 1), seconds, loss))
            del pending[:len(window)]
            if stop:
                raise Interrupted(stop.signum)

    with VideoWriter(output_path, w, h, info.fps, audio_from=input_path if info.has_audio else None,
                     crf=s.crf, codec=s.codec) as writer:
        reader = read_frames(input_path, size=(w, h), info=info)
        try:
            for index, frame in enumerate(reader):
                if index < done:
                    saved = work.load(index)
                    chain.replay(frame, saved)
                    writer.write(saved)
                    continue
                pending.append((index, frame))
                if len(pending) >= batch:
                    flush()
            flush()
            frames = reader.frames_read
        except TruncatedVideoError as e:
            truncated = e
            flush()  # the decodable frames are still stylised and written
            frames = reader.frames_read
        finally:
            reader.close()
    if not keep_frames:
        work.remove()
    if truncated is not None:
        raise TruncatedVideoError(input_path, f"input is truncated or damaged: stylised the {frames} "
                                              f"decodable frames into {output_path}",
                                  frames_read=frames)
    return VideoOutcome(output_path, frames, done, time.perf_counter() - started)
