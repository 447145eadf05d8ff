"""Planning: consecutive input frames -> steps with their flows and reliability masks.

Everything here depends on the input frames alone, so it runs ahead of the optimisation, on the
decode thread (threads.Ahead).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import flow
from ..errors import InputError
from ..frames import to_u8
from ..media.images import read_image
from ..media.video import TruncatedVideoError
from ..progress import Message
from ..settings import Settings


@dataclass
class Step:
    """Consecutive input frames stylised together, (H, W, 3) uint8 at the working size.

    how: "full" (first frame of a chain, or --independent), "scene cut" (full, after a cut) or
    "warm" (started from the previous output warped by the flow).
    For "warm" steps, per frame k (all (H, W, 2) float32 pixels or (H, W) float32 [0, 1]):
      to_anchor[k]: backward flow from frame k to the anchor (the input frame of the last output);
      anchor_mask[k]: where that warp is trusted (forward-backward check);
      to_neighbour[k], neighbour_mask[k]: the same between frame k and frame k-1 of the step
      (zeros for k = 0);
      light[k]: (2, H, W) float32 [0, 1], frame k's luma and the anchor's brought to it by the flow,
      both low-passed (light_at; only where settings.follow_light is on, else None).
    """

    how: str
    frames: list[np.ndarray]
    to_anchor: list[np.ndarray] | None = None
    anchor_mask: list[np.ndarray] | None = None
    to_neighbour: list[np.ndarray] | None = None
    neighbour_mask: list[np.ndarray] | None = None
    sources: list[np.ndarray] | None = None  # the frames the flow was computed on (None: frames)
    light: list[np.ndarray] | None = None

    @property
    def inputs(self) -> list[np.ndarray]:
        """The frames as decoded (flow size): what a re-plan and the next anchor start from."""
        return self.frames if self.sources is None else self.sources


def plan_steps(settings: Settings, anchor: np.ndarray | None, frames: list[np.ndarray],
               size: tuple[int, int] | None = None) -> list[Step]:
    """Split consecutive input frames (H, W, 3) uint8 into steps and compute their flows.

    anchor: the input frame whose stylised output the chain holds, or None when no chain is running
    (the first frame, or a resumed piece before its first frame). Frames that start a chain get a
    full optimisation; a run of frames between scene cuts is one warm step (window batching).
    size: the working (h, w) when the frames (and the anchor) are decoded larger for the flow
    (flow_source_size): steps then hold the frames resized to it and the flows brought down to it.
    """
    size = size or frames[0].shape[:2]
    working = [_resize(f, size) for f in frames]
    sources = None if working[0] is frames[0] else frames
    def part(i: int, j: int) -> dict:
        return dict(frames=working[i:j], sources=None if sources is None else frames[i:j])

    if settings.independent:
        return [Step("full", **part(0, len(frames)))]
    steps, i = [], 0
    def cut(a: np.ndarray, b: np.ndarray) -> bool:
        return flow.is_scene_cut(a, b, threshold=settings.scene_cut_threshold)

    while i < len(frames):
        if anchor is None or cut(anchor, frames[i]):
            steps.append(Step("full" if anchor is None else "scene cut", **part(i, i + 1)))
            anchor, i = frames[i], i + 1
            continue
        j = i + 1
        while j < len(frames) and not cut(frames[j - 1], frames[j]):
            j += 1
        steps.append(warm_step(settings, anchor, frames[i:j], size))
        anchor, i = frames[j - 1], j
    return steps


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A decoded frame at the working size (h, w): area filter, as ffmpeg's scaler uses to shrink."""
    if frame.shape[:2] == tuple(size):
        return frame
    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _flow_and_mask(settings: Settings, frame: np.ndarray, to: np.ndarray,
                   size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow frame -> to (on frame's grid) and where the warp is trusted, at the working
    size (h, w): the forward-backward check (flow.reliability) and, with flow_check, the inputs'
    agreement (flow.photometric_mask), both on the frames as given, then brought down to size.
    With --no-flow, zero flow trusted everywhere (the plain unwarped warm start)."""
    if not settings.flow:
        return np.zeros((*size, 2), np.float32), np.ones(size, np.float32)
    backward = flow.compute_flow(frame, to, settings.flow_preset)
    mask = flow.reliability(flow.compute_flow(to, frame, settings.flow_preset), backward,
                            boundaries=settings.motion_boundaries)
    if settings.flow_check > 0:
        mask = mask * flow.photometric_mask(to, frame, backward, settings.flow_check)
    if mask.shape != tuple(size):
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return flow.flow_at_size(backward, size), mask


def warm_step(settings: Settings, anchor: np.ndarray, frames: list[np.ndarray],
              size: tuple[int, int] | None = None) -> Step:
    """The flows of a warm step: each frame to the anchor, and each to its neighbour in the step.
    frames and anchor as decoded; size: the working (h, w) when they are larger (plan_steps)."""
    h, w = size or frames[0].shape[:2]
    size = (h, w)
    working = [_resize(f, size) for f in frames]
    step = Step("warm", working, [], [], [], [], None if working[0] is frames[0] else frames,
                [] if settings.follow_light != "off" else None)
    anchor_luma = grey(_resize(anchor, size))
    for k, frame in enumerate(frames):
        to_anchor, anchor_mask = _flow_and_mask(settings, frame, anchor, size)
        if k == 0:
            to_neighbour, neighbour_mask = np.zeros((*size, 2), np.float32), np.zeros(size, np.float32)
        else:
            to_neighbour, neighbour_mask = _flow_and_mask(settings, frame, frames[k - 1], size)
        step.to_anchor.append(to_anchor)
        step.anchor_mask.append(anchor_mask)
        step.to_neighbour.append(to_neighbour)
        step.neighbour_mask.append(neighbour_mask)
        if step.light is not None:
            step.light.append(light_at(grey(working[k]), anchor_luma, to_anchor, anchor_mask))
    return step


def light_at(luma: np.ndarray, anchor_luma: np.ndarray, to_anchor: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(2, H, W) float32 in [0, 1]: a frame's luma and the anchor's brought to it by the flow, each
    low-passed (sigma 1/64 of the long side) so that a change of light passes and flow errors at
    edges, which are thin, mostly do not. Only pixels whose warp is trusted (mask) count: where the
    flow brings nothing (a strip a pan reveals) the warped luma is a smear of the border, and its
    ratio to the new content is no change of light. Where no trusted pixel is near, both are 0."""
    sigma = max(luma.shape) / 64

    def low(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (0, 0), sigma)

    weight = low(mask)
    near = weight > 1e-3
    return np.stack([np.where(near, low(x * mask) / np.maximum(weight, 1e-3), 0)
                     for x in (luma, flow.warp(anchor_luma, to_anchor))]).astype(np.float32)


def grey(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> luma float32 (H, W) in [0, 1]."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


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


def _load(saved: Path | np.ndarray | None) -> tuple[np.ndarray | None, Message | None]:
    """A saved output as (H, W, 3) uint8, or (None, a warning) when its file does not decode
    (damaged inside a whole file, which workdir.drop_damaged cannot see): it is made again, from
    the frame before it."""
    if saved is None or isinstance(saved, np.ndarray):
        return saved, None
    try:
        return to_u8(read_image(saved).rgb), None
    except InputError as e:
        return None, Message(f"{e}; stylised again from the frame before it", level="warning",
                             code="video.frame_unreadable", fields={"path": str(saved)})


def produce(settings: Settings, frames: Iterable[np.ndarray], saved: Mapping[int, Path | np.ndarray],
            batch: Callable[[], int], *, start: int = 0, stop_at: int | None = None,
            size: tuple[int, int] | None = None) -> Iterator[Replay | Window | End | Message]:
    """Decode, load saved frames and plan windows of up to batch() frames: everything the
    optimisation waits for that depends on the input alone.

    frames: the clip's frames (H, W, 3) uint8, e.g. a media.video.FrameReader (closed at the end).
    saved: {frame index: its saved output, a PNG path or a uint8 array}. Frames before `start` are
    skipped; decoding stops at `stop_at`. size: the working (h, w) when the frames are decoded
    larger for the flow (plan_steps). A saved frame that does not decode is stylised again (a
    warning Message says so).
    """
    pending: list[tuple[int, np.ndarray]] = []
    anchor: np.ndarray | None = None  # the input of the last frame handed on, None: no chain yet
    read = 0

    def window() -> Window:
        nonlocal anchor
        inputs = [f for _, f in pending]
        planned = Window([i for i, _ in pending], plan_steps(settings, anchor, inputs, size))
        anchor = inputs[-1]
        pending.clear()
        return planned

    try:
        try:
            for index, frame in enumerate(frames):
                read = index + 1
                if index < start:
                    continue
                if stop_at is not None and index >= stop_at:
                    read = index
                    break
                output, warning = _load(saved.get(index))
                if warning is not None:
                    yield warning
                if output is not None:
                    if pending:
                        yield window()
                    yield Replay(index, frame, output)
                    anchor = frame
                    continue
                pending.append((index, frame))
                if len(pending) >= batch():
                    yield window()
        except TruncatedVideoError as e:
            if pending:
                yield window()  # the decodable frames are still stylised and written
            yield End(read, e)
            return
        if pending:
            yield window()
        yield End(read)
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
