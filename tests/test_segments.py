"""Segments through the real command: a clip cut into several segments (segment_frames from a
config file) comes out with every frame, its timing and its sound, and a segment join continues the
chain (the frames of one segment, to rounding). A killed run that redoes only the segments it had
not stored: tests/test_video.py; the executors' agreement: tests/test_cluster.py (Ray, --devices)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import REALSHORT, STYLE, command
from nstvid.pipeline.media.images import read_image
from nstvid.pipeline.media.video import ffmpeg_exe, probe, read_frames, run_ffmpeg

pytestmark = pytest.mark.xdist_group("segments")  # one clip and one in-process run, shared in order
FRAMES = 12
SEGMENT = 4  # frames per segment: 3 segments
LOOK = ["--size", "64", "--scales", "1", "--iterations", "4", "--frame-iterations", "2", "--strength", "0.1"]


@pytest.fixture(scope="module")
def ntsc_clip(tmp_path_factory):
    """12 frames of the real hand-held clip at 30000/1001 fps, x264 with B-frames, AAC sound."""
    out = tmp_path_factory.mktemp("segments") / "ntsc.mp4"
    run_ffmpeg(["-y", "-i", str(REALSHORT), "-vf", "fps=30000/1001", "-frames:v", str(FRAMES), "-c:v", "libx264",
                "-bf", "3", "-crf", "12", "-c:a", "aac", "-shortest", str(out)], path=out)
    return out


@pytest.fixture(scope="module")
def segment_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "segments.toml"
    path.write_text(f"segment_frames = {SEGMENT}\n")
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
    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0",
                        "-vf", "showinfo", "-f", "null", "-"], capture_output=True, text=True)
    return [float(t) for t in re.findall(r"pts_time:([0-9.]+)", r.stderr)]


def _check_exact(source, output) -> None:
    """Frame count, timestamps one frame apart, duration frames/fps, and the sound."""
    info = probe(output)
    assert sum(1 for _ in read_frames(output)) == FRAMES
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


def test_a_segment_join_is_no_restart(ntsc_clip, whole_config, in_process, cache_dir, tmp_path):
    """The chain in segments of 4 against one segment of 12, frame by frame as saved (the encodes
    differ: each segment is one of its own): the same frames up to the first join, and after it only
    the anchor's rounding to uint8 (what a resume replays too), never a restart's new texture or a
    frame shifted at a join."""
    out = tmp_path / "whole.mp4"
    r = _run([ntsc_clip, "--style", STYLE, "-o", out, "--config", whole_config, *LOOK, "--keep-frames"], cache_dir)
    assert r.returncode == 0, r.stderr

    def saved(output):
        work = output.with_name(f".{output.name}.nstvid-work")
        return np.stack([read_image(work / f"frame_{i:06d}.png").rgb for i in range(FRAMES)])

    per_frame = np.abs(saved(out) - saved(in_process)).mean(axis=(1, 2, 3)) * 255
    assert per_frame[:SEGMENT].max() == 0.0, per_frame
    assert per_frame.max() < 2.0, per_frame


def test_segments_in_this_process(ntsc_clip, in_process):
    _check_exact(ntsc_clip, in_process)
    work = in_process.with_name(f".{in_process.name}.nstvid-work")
    records = json.loads((work / "segments.json").read_text())
    assert sorted(records) == [f"p00000s{k:04d}" for k in range(3)]
    assert sum(r["frames"] for r in records.values()) == FRAMES
    assert len(list(work.glob("frame_*.png"))) == FRAMES  # --keep-frames: every frame as well



def test_a_rerun_on_other_workers_takes_no_segment_of_another_plan(ntsc_clip, segment_config, in_process, cache_dir,
                                                                   tmp_path):
    """On two device workers the clip is two pieces (frames 1-6; 7-12 with a lead-in from frame 1),
    whose segments have the names of the one-worker plan's but other frames (1-3 and 4-6, encoding
    nothing: they come back raw for the seam). That work folder, kept and rerun on one worker: a
    stored segment is taken only for the frames it was made of, so the one worker's segments are
    encoded again from the kept frames (nothing is stylised) and every frame is in the output once,
    as the one-worker run made it."""
    devices = tmp_path / "devices.mp4"
    r = _run([ntsc_clip, "--style", STYLE, "-o", devices, "--config", segment_config, *LOOK, "--devices", "cpu,cpu",
              "--keep-frames", "--log-format", "plain"], cache_dir)
    assert r.returncode == 0, r.stderr
    assert f"{FRAMES} frames in 2 pieces on 2 devices (cpu, cpu): 1-6, 7-12 (lead-in 6)" in r.stdout, r.stdout
    _check_exact(ntsc_clip, devices)
    out = tmp_path / "again.mp4"
    shutil.copytree(devices.with_name(f".{devices.name}.nstvid-work"), out.with_name(f".{out.name}.nstvid-work"))
    r = _run([ntsc_clip, "--style", STYLE, "-o", out, "--config", segment_config, *LOOK, "--log-format", "plain"],
             cache_dir)
    assert r.returncode == 0, r.stderr
    assert f"resuming at frame {FRAMES + 1}: {FRAMES} frames already stylised" in r.stdout, r.stdout
    assert "0 of 3 segments already stored; 3 to run" in r.stdout, r.stdout
    assert not re.search(r"^nstvid: frame \d+/", r.stdout, re.M), r.stdout  # replayed, none stylised
    _check_exact(ntsc_clip, out)
    a, b = (np.stack(list(read_frames(path))).astype(np.float64) for path in (in_process, out))
    assert np.abs(a - b).mean() < 2.0, np.abs(a - b).mean()  # the one-worker run's frames
