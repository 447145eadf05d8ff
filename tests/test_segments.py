"""Segments through the real command: a clip cut into several segments (segment_frames from a
config file) comes out frame-exact, with its timing and sound, on one process and on --devices;
and a run killed with SIGKILL redoes only the segments it had not stored."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import REALSHORT, STYLE, command
from nstvid.pipeline.media.images import read_image
from nstvid.pipeline.media.video import probe, read_frames, run_ffmpeg

pytestmark = pytest.mark.xdist_group("segments")  # one clip and one in-process run, shared in order
FRAMES = 20
LOOK = ["--size", "64", "--scales", "1", "--iterations", "4", "--frame-iterations", "2", "--strength", "0.1"]


@pytest.fixture(scope="module")
def ntsc_clip(tmp_path_factory):
    """20 frames of the real hand-held clip at 30000/1001 fps, x264 with B-frames, AAC sound."""
    out = tmp_path_factory.mktemp("segments") / "ntsc.mp4"
    run_ffmpeg(["-y", "-i", str(REALSHORT), "-vf", "fps=30000/1001", "-frames:v", str(FRAMES), "-c:v", "libx264",
                "-bf", "3", "-crf", "12", "-c:a", "aac", "-shortest", str(out)], path=out)
    return out


@pytest.fixture(scope="module")
def segment_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "segments.toml"
    path.write_text("segment_frames = 6\n")
    return path


@pytest.fixture(scope="module")
def whole_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "whole.toml"
    path.write_text(f"segment_frames = {FRAMES}\n")
    return path


def _run(args, cache_dir, **kwargs):
    env = {**os.environ, "NSTVID_CACHE_DIR": str(cache_dir)}
    return subprocess.run(command(*args), capture_output=True, text=True, env=env, timeout=600, **kwargs)


def _pts(path) -> list[float]:
    r = subprocess.run([run_ffmpeg.__globals__["ffmpeg_exe"](), "-hide_banner", "-i", str(path), "-map", "0:v:0",
                        "-vf", "showinfo", "-f", "null", "-"], capture_output=True, text=True)
    return [float(t) for t in re.findall(r"pts_time:([0-9.]+)", r.stderr)]


def _check_exact(source, output, order: bool = True) -> None:
    """Frame count, each output frame nearest its own input frame (order: for outputs that follow
    their input; a warm chain at two iterations a frame lags hand-held shake), timestamps one frame
    apart, duration frames/fps and the sound as long as the video."""
    info = probe(output)
    outs = [f.astype(np.float32) for f in read_frames(output)]
    ins = [f.astype(np.float32) for f in read_frames(source, size=(outs[0].shape[1], outs[0].shape[0]))]
    assert len(outs) == len(ins) == FRAMES
    for i, out in enumerate(outs if order else []):
        own = np.abs(out - ins[i]).mean()
        for j in (i - 1, i + 1):
            if 0 <= j < FRAMES:
                assert own < np.abs(out - ins[j]).mean(), (i, j)  # no duplicate or missing frame at a join
    step = float(1 / info.fps)
    pts = _pts(output)
    assert len(pts) == FRAMES and all(abs(b - a - step) < 1e-3 for a, b in zip(pts, pts[1:])), pts
    assert info.fps == probe(source).fps
    assert abs(info.duration - FRAMES * step) <= step, info.duration
    assert info.has_audio


@pytest.fixture(scope="module")
def in_process(ntsc_clip, segment_config, cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("in_process") / "out.mp4"
    r = _run([ntsc_clip, "--style", STYLE, "-o", out, "--config", segment_config, *LOOK, "--keep-frames"], cache_dir)
    assert r.returncode == 0, r.stderr
    return out


def test_segments_are_frame_exact(ntsc_clip, segment_config, cache_dir, tmp_path):
    """Every frame stylised on its own (--independent, so that each output is its input at low
    strength): the joins lose, repeat or shift no frame."""
    out = tmp_path / "independent.mp4"
    r = _run([ntsc_clip, "--style", STYLE, "-o", out, "--config", segment_config, *LOOK, "--independent"],
             cache_dir)
    assert r.returncode == 0, r.stderr
    _check_exact(ntsc_clip, out)


def test_a_segment_join_is_no_restart(ntsc_clip, whole_config, in_process, cache_dir, tmp_path):
    """The chain in segments of 5 against one segment of 20, frame by frame as saved (the encodes
    differ: each segment is one of its own): the same frames up to the first join, and after it only
    the anchor's rounding to uint8 (what a resume replays too), never a restart's new texture."""
    out = tmp_path / "whole.mp4"
    r = _run([ntsc_clip, "--style", STYLE, "-o", out, "--config", whole_config, *LOOK, "--keep-frames"], cache_dir)
    assert r.returncode == 0, r.stderr

    def saved(output):
        work = output.with_name(f".{output.name}.nstvid-work")
        return np.stack([read_image(work / f"frame_{i:06d}.png").rgb for i in range(FRAMES)])

    per_frame = np.abs(saved(out) - saved(in_process)).mean(axis=(1, 2, 3)) * 255
    assert per_frame[:5].max() == 0.0, per_frame
    assert per_frame.max() < 2.0, per_frame


def test_segments_in_this_process(ntsc_clip, in_process):
    _check_exact(ntsc_clip, in_process, order=False)
    work = in_process.with_name(f".{in_process.name}.nstvid-work")
    records = json.loads((work / "segments.json").read_text())
    assert sorted(records) == [f"p00000s{k:04d}" for k in range(4)]  # 20 frames, 6 at most: 4 of 5
    assert sum(r["frames"] for r in records.values()) == FRAMES
    assert len(list(work.glob("frame_*.png"))) == FRAMES  # --keep-frames: every frame as well


def test_one_device_worker_gives_the_frames_of_this_process(ntsc_clip, segment_config, in_process, cache_dir,
                                                            tmp_path):
    """--devices cpu runs the same plan in a worker process: the same frames up to float summation
    order (the worker has its own thread count)."""
    out = tmp_path / "devices.mp4"
    r = _run([ntsc_clip, "--style", STYLE, "-o", out, "--config", segment_config, *LOOK, "--devices", "cpu"],
             cache_dir)
    assert r.returncode == 0, r.stderr
    _check_exact(ntsc_clip, out, order=False)
    a = np.stack(list(read_frames(out))).astype(np.float32)
    b = np.stack(list(read_frames(in_process))).astype(np.float32)
    assert np.abs(a - b).mean() < 2.0


def test_killed_run_redoes_only_the_segments_it_had_not_stored(ntsc_clip, segment_config, cache_dir, tmp_path):
    out = tmp_path / "out.mp4"
    work = tmp_path / ".out.mp4.nstvid-work"
    args = [ntsc_clip, "--style", STYLE, "-o", out, "--config", segment_config, *LOOK, "--log-format", "plain"]
    env = {**os.environ, "NSTVID_CACHE_DIR": str(cache_dir)}
    proc = subprocess.Popen(command(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    stored = {}
    while time.time() < deadline and len(stored) < 2:
        assert proc.poll() is None, proc.communicate()
        try:
            stored = json.loads((work / "segments.json").read_text())
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    stored = json.loads((work / "segments.json").read_text())
    saved = {int(p.stem[6:]) for p in work.glob("frame_*.png")}
    # The frames a stored segment holds are dropped; of those only each segment's last (its anchor) stays.
    assert {i for i in saved if i < 5 * len(stored)} == {5 * k + 4 for k in range(len(stored))}, saved
    done_frames = {i for k in range(len(stored)) for i in range(5 * k, 5 * k + 5)} | saved
    r = _run(args, cache_dir)
    assert r.returncode == 0, r.stderr
    assert f"{len(stored)} of 4 segments already stored" in r.stdout, r.stdout
    # Only the frames neither stored nor saved are stylised again: one progress line each.
    assert len(re.findall(rf"^nstvid: frame \d+/{FRAMES} ", r.stdout, re.M)) == FRAMES - len(done_frames), r.stdout
    _check_exact(ntsc_clip, out, order=False)
