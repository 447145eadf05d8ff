"""The orchestrator's store and resume (video/orchestrator.py) on their own: an executor whose
workers stylise nothing (each segment decoded from its own range and encoded as it was, with its
raw frames, as a Ray worker returns them) drives the real plan, store, seams, resume folder and
join, with the real ffmpeg, in a second or two. What the stylisation adds is the real command's
(tests/test_segments.py, tests/test_cluster.py).

* The resume folder stays flat in clip length: a stored segment's frames, an anchor once the next
  segment is stored, and a seam's sides once it is encoded are dropped.
* The driver killed mid-clip, then run again: only the segments not stored run, each half-done
  piece goes on from its saved anchor (the exact frame the worker would return), and the output is
  the uninterrupted run's, frame for frame.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from conftest import REALSHORT, settings
from nstvid.pipeline.media.video import VideoWriter, read_frames
from nstvid.pipeline.video.clip import Clip, open_clip
from nstvid.pipeline.video.contract import ExecutorBase, Report
from nstvid.pipeline.video.orchestrator import stylise_clip
from nstvid.pipeline.video.segment import SegmentOutput, SegmentTask
from nstvid.pipeline.video.workdir import WorkDir

FRAMES = 36  # all of realshort
SEGMENT = 4  # frames per segment: 9 in one piece


class Crash(KeyboardInterrupt):
    """What kill -9 leaves, as near as a test in one process gets: the run stops between two stores."""


class PassThrough(ExecutorBase):
    """An executor (video/contract.py; mypy checks it against the contract in `make test`), with
    `workers` workers in name that run one segment at a time: each output frame is its input
    frame, decoded at the working size."""

    def __init__(self, workers: int, crash_after: int | None = None):
        self.workers, self.crash_after = workers, crash_after
        self.in_hand: list[SegmentTask] = []
        self.ran: list[str] = []
        self.folder: list[int] = []  # the frames the resume folder held before each store

    def describe(self) -> str:
        return f"{self.workers} pass-through workers"

    def start(self, clip: Clip, work: WorkDir, suffix: str, report: Report) -> None:
        self.clip, self.work, self.suffix = clip, work, suffix

    @property
    def free(self) -> int:
        return self.workers - len(self.in_hand)

    @property
    def busy(self) -> bool:
        return bool(self.in_hand)

    def submit(self, task: SegmentTask) -> None:
        self.in_hand.append(task)

    def next(self, timeout: float) -> SegmentOutput | None:
        if self.crash_after is not None and len(self.ran) == self.crash_after:
            raise Crash
        task = self.in_hand.pop(0)
        segment = task.segment
        h, w = self.work.size
        origin = segment.first - (task.anchor is not None)
        frames = list(self.clip.part(origin, segment.stop).frames((w, h)))
        if task.anchor is not None:  # the anchor is the previous output: here, that frame's input
            assert np.array_equal(task.anchor, frames.pop(0)), f"{segment.name}: the wrong anchor"
        path = self.work.segment_path(segment.name, self.suffix) if segment.encoded else None
        raw = {}
        with VideoWriter(path, w, h, self.clip.info.fps) if path else contextlib.nullcontext() as writer:
            for index, frame in zip(range(segment.first, segment.stop), frames, strict=True):
                if segment.encode_from <= index < segment.encode_to:
                    writer.write(frame)
                if index in segment.raw_indices():
                    raw[index] = frame
        self.ran.append(segment.name)
        self.folder.append(sum(p.name.startswith(("frame_", "lead_")) for p in self.work.path.iterdir()))
        return SegmentOutput(segment, path, raw)

    def kill(self) -> None:
        self.in_hand = []


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory) -> Path:
    """The real hand-held clip (36 frames), one shot (no scene cut: the pieces of 2 workers meet
    at a seam)."""
    from nstvid.pipeline.media.video import run_ffmpeg

    out = tmp_path_factory.mktemp("store") / "clip.mp4"
    run_ffmpeg(["-y", "-i", str(REALSHORT), "-vf", "scale=96:-2", "-an", str(out)], path=out)
    return out


def _run(clip_path: Path, out: Path, executor: PassThrough):
    return stylise_clip(executor, settings(size=96, segment_frames=SEGMENT), open_clip(clip_path), out)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_folder_stays_flat_and_a_killed_driver_redoes_only_what_was_not_stored(clip_path, tmp_path, workers):
    whole = PassThrough(workers)
    _run(clip_path, tmp_path / "whole.mp4", whole)
    segments = len(whole.ran)
    assert segments >= 9
    # One anchor per piece in hand (and the next one, written before the last is dropped), and
    # with 2 workers the 16 frames of each side of the seam until it is encoded. Before, every
    # segment's anchor stayed: 9 or more here, 1 per 240 frames on a film.
    assert max(whole.folder) <= 2 * workers + (2 * 16 if workers > 1 else 0), whole.folder
    assert whole.folder[-1] <= 2, whole.folder  # the seam is encoded: its sides are gone

    out = tmp_path / "resumed.mp4"
    with pytest.raises(Crash):
        _run(clip_path, out, PassThrough(workers, crash_after=segments // 2))
    work = out.with_name(f".{out.name}.nstvid-work")
    assert work.is_dir() and not out.exists()
    again = PassThrough(workers)
    _run(clip_path, out, again)  # asserts each anchor on the way
    assert len(again.ran) == segments - segments // 2, again.ran
    assert not work.exists()
    got, want = (list(read_frames(p)) for p in (out, tmp_path / "whole.mp4"))
    assert len(got) == FRAMES and all(np.array_equal(a, b) for a, b in zip(got, want))
