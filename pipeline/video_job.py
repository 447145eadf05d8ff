"""The warm-start chain over a stream of video frames (Ruder, Dosovitskiy & Brox 2016), with resume.

Per frame t:
  * t = 0, a scene cut, or --independent: a full coarse-to-fine optimisation from the content;
  * otherwise: start from the previous *stylised* frame warped into frame t by optical flow (DIS on
    the input frames), with the current content where the forward-backward check distrusts the warp;
    fewer iterations; a temporal loss to the warped previous output, masked the same way.

Every finished frame is saved (PNG, lossless) in a work folder beside the output, so a rerun after
Ctrl-C, SIGTERM or kill -9 replays the saved frames into a fresh encoder and goes on from the last.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from . import flow
from .engine import Engine
from .errors import InputError, Interrupted
from .image_job import check_output, initial_images, to_rgb, to_tensor
from .media.images import fit_long_side
from .media.video import TruncatedVideoError, VideoWriter, probe, read_frames
from .optimize import Temporal, optimise, stylise
from .progress import NEVER_STOP, Callback, FrameDone, Message, StopRequest, ignore
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


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


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
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb_u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        tmp = self.path / f".tmp_{index:06d}.png"
        tmp.write_bytes(buf.tobytes())
        tmp.replace(self.frame_path(index))

    def load(self, index: int) -> np.ndarray:
        return cv2.cvtColor(cv2.imread(str(self.frame_path(index)), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def to_float(rgb_u8: np.ndarray) -> np.ndarray:
    return rgb_u8.astype(np.float32) / 255.0


class Chain:
    """State carried from frame to frame: the previous input and output frames."""

    def __init__(self, engine: Engine, styles: StyleSet, progress: Callback):
        self.engine = engine
        self.styles = styles
        self.progress = progress
        self.prev_input: np.ndarray | None = None  # (H, W, 3) uint8
        self.prev_output: np.ndarray | None = None  # (H, W, 3) float32 [0, 1]

    def step(self, frame: np.ndarray) -> tuple[np.ndarray, float, str]:
        """Stylise one input frame (H, W, 3) uint8 -> (output float32 [0, 1], loss, how started)."""
        s = self.engine.settings
        content = to_tensor(to_float(frame))
        if self.prev_output is None or s.independent:
            how = "full"
        elif flow.is_scene_cut(self.prev_input, frame, threshold=s.scene_cut_threshold):
            how = "scene cut"
        else:
            how = "warm"
        if how != "warm":
            result = stylise(self.engine, self.styles, content, initial_images(self.engine, content),
                             iterations=s.iterations, scales=s.scales)
        else:
            if s.flow:
                backward = flow.compute_flow(frame, self.prev_input)  # t -> t-1, on frame t's grid
                forward = flow.compute_flow(self.prev_input, frame)  # t-1 -> t, on frame t-1's grid
                warped = flow.warp(self.prev_output, backward)
                mask = flow.reliability(forward, backward)
            else:
                warped = self.prev_output
                mask = np.ones(frame.shape[:2], np.float32)
            warped_t = to_tensor(warped)
            mask_t = torch.from_numpy(np.ascontiguousarray(mask))[None, None]
            # Disoccluded pixels start from the content, as Ruder et al. do, not from a smeared warp.
            init = mask_t * warped_t + (1 - mask_t) * content
            if s.preserve_colors:
                from .color import luminance
                warped_t, init = luminance(warped_t), luminance(init)
                target = luminance(content)
            else:
                target = content
            size = tuple(content.shape[-2:])
            result = optimise(self.engine, init, target, self.styles.targets(size),
                              iterations=s.frame_iterations, temporal=Temporal(warped_t, mask_t))
            if s.preserve_colors:
                from .color import recombine
                result.images = recombine(result.images, content)
        out = to_rgb(result.images[0])
        self.prev_input, self.prev_output = frame, out
        return out, float(result.total[0]), how

    def replay(self, frame: np.ndarray, saved: np.ndarray) -> None:
        """Resume: take a saved output as if it had just been computed."""
        self.prev_input, self.prev_output = frame, to_float(saved)


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
    key = {"version": WORK_VERSION, "input": file_digest(input_path),
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
    chain = Chain(engine, styles, progress)
    truncated: TruncatedVideoError | None = None
    index = 0
    with VideoWriter(output_path, w, h, info.fps, audio_from=input_path if info.has_audio else None,
                     crf=s.crf, codec=s.codec) as writer:
        reader = read_frames(input_path, size=(w, h), info=info)
        try:
            for index, frame in enumerate(reader):
                t0 = time.perf_counter()
                if index < done:
                    saved = work.load(index)
                    chain.replay(frame, saved)
                    writer.write(saved)
                    continue
                out, loss, how = chain.step(frame)
                out_u8 = to_u8(out)
                work.save(index, out_u8)
                writer.write(out_u8)
                if how == "scene cut":
                    progress(Message(f"scene cut at frame {index + 1}: full optimisation"))
                progress(FrameDone(index, max(info.frame_count, index + 1), time.perf_counter() - t0, loss))
                if stop:
                    raise Interrupted(stop.signum)
            frames = reader.frames_read
        except TruncatedVideoError as e:
            truncated = e
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
