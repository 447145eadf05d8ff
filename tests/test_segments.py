"""Segments through the real command: a clip cut into several segments (segment_frames from a
config file) comes out with every frame, its timing and its sound, and a segment join continues the
chain (the frames of one segment, to rounding). The clips: 30000/1001 fps with B-frames and AAC, one
whose video starts after its sound (an mp4 edit list), a variable-frame-rate one, a --start span,
frame counts that leave a short last segment, and one segment. A killed run that redoes only the
segments it had not stored: tests/test_video.py; the executors' agreement: tests/test_cluster.py
(Ray, --devices)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from conftest import REALSHORT, STYLE, codes, nstvid, nstvid_env, said, set_flag
from metrics import lag_count
from nstvid.pipeline.media.images import read_image
from nstvid.pipeline.media.video import FrameSpan, ffmpeg_exe, probe, read_frames, run_ffmpeg

pytestmark = pytest.mark.xdist_group("segments")  # one clip and one in-process run, shared in order
FRAMES = 12
SEGMENT = 4  # frames per segment: 3 segments
LOOK = ["--size", "64", "--scales", "1", "--iterations", "4", "--frame-iterations", "2", "--strength", "0.1"]
# Where each frame lands is measured on runs of --independent frames (of one iteration: cheaper, and
# no less telling): each output is made from its own decoded input alone, so at --strength 0.1 it
# keeps that input's shapes. A chain at these test settings (2 iterations a frame, warm-started from
# the previous output) lags the hand-held motion by itself: 5 of ntsc_clip's 12 frames match an
# earlier input best, in one segment or in 3 alike (with flow_scale 2, 1 of 12; docs/temporal.md
# 5.3). The segments, their seeks and anchors are the same either way; that a join continues the
# chain is test_a_segment_join_is_no_restart's.
PLACED = [*set_flag(LOOK, "--iterations", 1), "--independent"]
EDIT_FRAMES = 13  # in segments of 4: 3, 3, 4, 3 (the planner evens them out; the last one short)
OFFSET = 0.1  # seconds (3 frames) from the edit-list clip's start, and its sound's, to its first frame
RATE = 48000  # realshort's sound; decoded at this rate to compare
NTSC = "fps=30000/1001"
# The VFR clip's frame times in frames of 1001/30000 s: 0 1 2 3.3 4 5 6 6.3 7 8 9 10.2 11 12. Most
# intervals are one frame (the rate stays 30000/1001); 6 and 6.3 fall on one frame of the constant
# rate, so the reader drops one of them: 14 frames in, 13 out. No frame is repeated (a repeat would
# tie lag_count's correlations).
VFR_TIMES = r"N-gte(N\,8)+0.3*eq(N\,3)-0.7*eq(N\,7)+0.2*eq(N\,11)"
# A VFR clip with holds (for the reader only, where repeats tie nothing): 0 1 2 3 5.6 6.6 7.6 10.6
# 11.6 12.6 13.6 14.6: 16 frames from the reader, frame 3 repeated twice and 7.6 twice.
HELD_TIMES = r"N+1.6*gte(N\,4)+2*gte(N\,7)"


@pytest.fixture(scope="module")
def ntsc_clip(tmp_path_factory):
    """12 frames of the real hand-held clip at 30000/1001 fps, x264 with B-frames, AAC sound."""
    out = tmp_path_factory.mktemp("segments") / "ntsc.mp4"
    run_ffmpeg(["-y", "-i", str(REALSHORT), "-vf", "fps=30000/1001", "-frames:v", str(FRAMES), "-c:v", "libx264",
                "-bf", "3", "-crf", "12", "-c:a", "aac", "-shortest", str(out)], path=out)
    return out


@pytest.fixture(scope="module")
def edit_clip(tmp_path_factory):
    """13 frames like ntsc_clip, stream-copied behind an -itsoffset: the video starts 0.1 s after the
    file and its sound (the mp4 holds an edit list whose empty edit delays the video track), the sound
    realshort's own and longer than the video. Checked here without the project's probe: the first
    frame's time (ffmpeg's showinfo) and the elst box."""
    folder = tmp_path_factory.mktemp("edit")
    plain, out = folder / "plain.mp4", folder / "edit.mp4"
    run_ffmpeg(["-y", "-i", str(REALSHORT), "-vf", NTSC, "-frames:v", str(EDIT_FRAMES), "-c:v", "libx264",
                "-bf", "3", "-crf", "12", "-an", str(plain)], path=plain)
    run_ffmpeg(["-y", "-itsoffset", str(OFFSET), "-i", str(plain), "-i", str(REALSHORT), "-map", "0:v",
                "-map", "1:a", "-c", "copy", str(out)], path=out)
    pts = _pts(out)
    assert len(pts) == EDIT_FRAMES and abs(pts[0] - OFFSET) < 1e-3, pts
    assert b"elst" in out.read_bytes()
    return out


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory):
    """16 frames (one GOP) stream-copied from 0.1 s, inside the GOP: the mp4's edit list starts the
    video 3 frames (and the B-frames' delay) into its media, and the packets before that are decoded
    only to be dropped (flagged discard): 13 frames shown, the first at the file's time 0."""
    folder = tmp_path_factory.mktemp("cut")
    whole, out = folder / "gop.mp4", folder / "cut.mp4"
    run_ffmpeg(["-y", "-i", str(REALSHORT), "-vf", NTSC, "-frames:v", "16", "-c:v", "libx264", "-bf", "3", "-g",
                "250", "-crf", "12", "-c:a", "aac", str(whole)], path=whole)
    run_ffmpeg(["-y", "-ss", "0.1", "-i", str(whole), "-c", "copy", str(out)], path=out)
    pts = _pts(out)
    assert len(pts) == 13 and pts[0] == 0.0 and b"elst" in out.read_bytes(), pts
    return out


def _vfr(out, times: str, frames: int) -> None:
    """`frames` frames of realshort at `times` (an expression of N, in frames of 1001/30000 s)."""
    run_ffmpeg(["-y", "-i", str(REALSHORT), "-vf", f"{NTSC},settb=1/30000,setpts='({times})*1001/30000/TB'",
                "-frames:v", str(frames), "-fps_mode", "vfr", "-enc_time_base", "1/30000", "-video_track_timescale",
                "30000", "-c:v", "libx264", "-bf", "3", "-crf", "12", "-c:a", "copy", str(out)], path=out)


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory):
    """14 frames of realshort at the irregular times of VFR_TIMES (x264 with B-frames, realshort's
    sound copied): what the reader resamples to 13 frames at 30000/1001."""
    out = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    _vfr(out, VFR_TIMES, 14)
    info = probe(out)
    assert info.variable_frame_rate and info.fps == Fraction(30000, 1001), info
    return out


@pytest.fixture(scope="module")
def held_clip(tmp_path_factory):
    """12 frames of realshort at HELD_TIMES: 16 from the reader, two frames held (repeated)."""
    out = tmp_path_factory.mktemp("held") / "held.mp4"
    _vfr(out, HELD_TIMES, 12)
    assert probe(out).variable_frame_rate
    return out


@pytest.fixture(scope="module")
def late_held_clip(held_clip):
    """held_clip's video 0.05 s (1.5 frames) after its file and sound: grid frame 1 is its frame 0."""
    out = held_clip.with_name("late_held.mp4")
    run_ffmpeg(["-y", "-itsoffset", "0.05", "-i", str(held_clip), "-i", str(REALSHORT), "-map", "0:v", "-map",
                "1:a", "-c", "copy", str(out)], path=out)
    assert abs(_pts(out)[0] - 0.05) < 1e-3 and probe(out).variable_frame_rate
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
    return nstvid(nstvid_env(cache_dir), *args, **kwargs)


def _pts(path) -> list[float]:
    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0",
                        "-vf", "showinfo", "-f", "null", "-"], capture_output=True, text=True)
    return [float(t) for t in re.findall(r"pts_time:([0-9.]+)", r.stderr)]


def _check_exact(source, output, frames: int = FRAMES, first: int = 0, placed: bool = True) -> None:
    """Frame count, timestamps one frame apart, duration frames/fps, each frame in its place (no
    frame repeated or lost at a join; placed: a run of PLACED), and the sound: the output holds
    frames first..first+frames-1 of the source as the reader yields them (for VFR: resampled to the
    constant rate), and the source's sound from frame `first`'s time."""
    info = probe(output)
    outs = list(read_frames(output))
    assert len(outs) == frames
    step = float(1 / info.fps)
    pts = _pts(output)
    assert len(pts) == frames and all(abs(b - a - step) < 1e-3 for a, b in zip(pts, pts[1:])), pts
    assert info.fps == probe(source).fps
    assert abs(info.duration - frames * step) <= step, info.duration
    if placed:
        _check_in_place(source, outs, first)
    _check_sound(source, output, frames * step, _source_time(source, first))


def _check_in_place(source, outs, first: int) -> None:
    """Each output frame correlates best with its own input frame among input frames k-3..k+3
    (metrics.lag_count; at --strength 0.1 the output keeps its input's shapes). The input
    frames are the source's as read_frames yields them from its start (no seek), at the output's
    size: a segment that starts one frame early or late puts its frames next to their own."""
    size = outs[0].shape[1::-1]
    inputs = list(read_frames(source, size=size))[first:first + len(outs)]
    assert len(inputs) == len(outs)
    wrong, earlier, compared = lag_count(outs, inputs)
    assert compared == len(outs) and wrong == 0, (wrong, earlier, compared)


def _source_time(source, first: int) -> float:
    """Seconds from the source's start (what its sound is timed from) to its frame `first` as the
    reader counts frames: the first frame's own time, by ffmpeg's showinfo, then one frame each (the
    constant rate a VFR source is resampled to; the VFR clip's first frame is on its grid, at 0)."""
    return _pts(source)[0] + first / float(probe(source).fps)


def _audio(path) -> np.ndarray:
    """The first audio stream as mono float samples at RATE, sample n at the file's time n / RATE
    (the time its video frames' timestamps count from): aresample puts every decoded frame at its
    own timestamp, filling a gap or trimming an overlap of over 1 ms, from 0. (realshort's first AAC
    packet decodes to 1024 samples but lasts 1618: the samples, read one after another, would run
    594 early from there on; the project's copy of the sound keeps the timestamps.)"""
    r = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-af",
                        f"aresample={RATE}:async=1:min_hard_comp=0.001:first_pts=0", "-ac", "1", "-f", "f32le",
                        "-"], capture_output=True, check=True)
    return np.frombuffer(r.stdout, np.float32)


SEARCH = 0.2  # seconds either side of the expected start where the output's sound is looked for


def _sound_lag(source, output, start: float) -> tuple[float, float]:
    """Where the output's sound is found in the source's: (seconds late against `start`, the
    normalised correlation there), the best match of the output's sound (less 1024 samples each end,
    an AAC packet) within SEARCH of start."""
    out, src = _audio(output), _audio(source)
    edge, reach = 1024, int(SEARCH * RATE)
    window = out[edge:len(out) - edge].astype(np.float64)
    pad = 2 * reach + len(window)  # the source padded with silence both sides, for starts near its ends
    padded = np.concatenate([np.zeros(pad), src.astype(np.float64), np.zeros(pad)])
    at = pad + round(start * RATE) + edge - reach  # the sample that lag -reach pairs with window[0]
    part = padded[at:at + 2 * reach + len(window)]
    corr = np.correlate(part, window, mode="valid")
    energy = np.convolve(part ** 2, np.ones(len(window)), mode="valid")
    score = corr / np.sqrt(energy * (window ** 2).sum() + 1e-20)
    best = int(np.argmax(score))
    return (best - reach) / RATE, float(score[best])


def _check_sound(source, output, seconds: float, start: float) -> None:
    """The output's sound is as long as its video (to an AAC packet) and is the source's
    from `start` (the time in the source of the output's first frame): found there within 1 ms,
    nearly sample for sample (a copy of the source's AAC packets). Sound from the file's start
    instead of the clip's would be found 0.1 s (the edit-list clip) or more early, or nowhere."""
    assert probe(output).has_audio
    length = len(_audio(output)) / RATE
    # To an AAC packet (1024 samples, 21 ms): the copy ends on a packet, and a source's sound may end
    # a little before its last frame (ntsc_clip's -shortest, the VFR clip's -frames:v).
    assert abs(length - seconds) <= 1024 / RATE + 0.001, (length, seconds)
    late, match = _sound_lag(source, output, start)
    assert abs(late) <= 0.001 and match > 0.9, (late, match)


def _segments(output) -> list[int]:
    """The frames of each stored segment, in order (segments.json of the kept work folder)."""
    work = output.with_name(f".{output.name}.nstvid-work")
    records = json.loads((work / "segments.json").read_text())
    return [records[name]["frames"] for name in sorted(records)]


def _stylise(source, config, output, cache_dir, *extra, look=PLACED):
    r = _run([source, "--style", STYLE, "-o", output, "--config", config, *look, "--keep-frames", *extra], cache_dir)
    assert r.returncode == 0, r.stderr
    return output


@pytest.fixture(scope="module")
def in_process(ntsc_clip, segment_config, cache_dir, tmp_path_factory):
    return _stylise(ntsc_clip, segment_config, tmp_path_factory.mktemp("in_process") / "out.mp4", cache_dir, look=LOOK)


def test_a_segment_join_is_no_restart(ntsc_clip, whole_config, in_process, cache_dir, tmp_path):
    """The chain in segments of 4 against one segment of 12, frame by frame as saved (the encodes
    differ: each segment is one of its own): the same frames up to the first join, and after it only
    the anchor's rounding to uint8 (what a resume replays too), never a restart's new texture or a
    frame shifted at a join. The single segment's output is exact as well (_check_exact)."""
    out = _stylise(ntsc_clip, whole_config, tmp_path / "whole.mp4", cache_dir, look=LOOK)
    assert _segments(out) == [FRAMES]

    def saved(output):
        work = output.with_name(f".{output.name}.nstvid-work")
        return np.stack([read_image(work / f"frame_{i:06d}.png").rgb for i in range(FRAMES)])

    per_frame = np.abs(saved(out) - saved(in_process)).mean(axis=(1, 2, 3)) * 255
    assert per_frame[:SEGMENT].max() == 0.0, per_frame
    assert per_frame.max() < 2.0, per_frame
    _check_exact(ntsc_clip, out, placed=False)


def test_segments_in_this_process(ntsc_clip, in_process):
    _check_exact(ntsc_clip, in_process, placed=False)
    work = in_process.with_name(f".{in_process.name}.nstvid-work")
    records = json.loads((work / "segments.json").read_text())
    assert sorted(records) == [f"p00000s{k:04d}" for k in range(3)]
    assert sum(r["frames"] for r in records.values()) == FRAMES
    assert len(list(work.glob("frame_*.png"))) == FRAMES  # --keep-frames: every frame as well


@pytest.mark.parametrize("name, frames", [("edit_clip", EDIT_FRAMES), ("cut_clip", 13), ("vfr_clip", 13),
                                          ("held_clip", 16), ("late_held_clip", 16)])
def test_a_span_read_is_the_whole_read_from_there(name, frames, request):
    """What a segment's worker decodes (read_frames with a FrameSpan: a seek) against the same
    frames of one read from the start, pixel for pixel, for every start frame: on the edit-list clip
    a seek timed from the file's start instead of the video's lands 3 frames early; the cut clip's
    discarded packets are no frames (counted, they made the probe's count 16 and, timed, its video
    start 0.1 s early); on the VFR clips a seek must resample as the whole read does (the same
    frame dropped, the same frames repeated, also a repeat of a frame from before the seek point,
    and from a start that is not on the grid)."""
    source = request.getfixturevalue(name)
    info = probe(source)
    whole = list(read_frames(source, size=(64, 48), info=info))
    assert len(whole) == frames
    if not info.variable_frame_rate:  # a VFR count is the probe's estimate
        assert info.frame_count == frames
    for first in range(1, len(whole) - 1):
        part = list(read_frames(source, size=(64, 48), info=info, span=FrameSpan(first, len(whole), info.fps)))
        assert len(part) == len(whole) - first, first
        assert all(np.array_equal(a, b) for a, b in zip(part, whole[first:])), first


def test_an_edit_list_clip_in_segments(edit_clip, segment_config, cache_dir, tmp_path):
    """The clip whose video starts 0.1 s after its file and sound, in segments of 4 (3, 3, 4, 3:
    the last one short): every frame in its place, and the sound from the first frame's time."""
    out = _stylise(edit_clip, segment_config, tmp_path / "edit.mp4", cache_dir)
    assert _segments(out) == [3, 3, 4, 3]
    _check_exact(edit_clip, out, EDIT_FRAMES)


def test_a_start_span_in_segments(edit_clip, segment_config, cache_dir, tmp_path):
    """--start 3f --duration 10f of the edit-list clip in segments of 4 (3, 4, 3): frames 3-12, and
    the sound from frame 3's time (0.1 s + 3 frames into the file)."""
    out = _stylise(edit_clip, segment_config, tmp_path / "span.mp4", cache_dir, "--start", "3f", "--duration", "10f")
    assert _segments(out) == [3, 4, 3]
    _check_exact(edit_clip, out, 10, first=3)


def test_a_vfr_clip_in_segments(vfr_clip, segment_config, cache_dir, tmp_path):
    """The VFR clip in segments of 4 (13 frames after resampling: 3, 3, 4, 3): the frames a whole
    read of the clip yields, each in its place, at the constant rate, with the sound."""
    assert sum(1 for _ in read_frames(vfr_clip)) == 13
    out = _stylise(vfr_clip, segment_config, tmp_path / "vfr.mp4", cache_dir)
    assert _segments(out) == [3, 3, 4, 3]
    _check_exact(vfr_clip, out, 13)


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
              "--keep-frames", "--log-format", "json"], cache_dir)
    assert r.returncode == 0, r.stderr
    assert said(r.stdout, "video.pieces", frames=FRAMES, on="2 devices (cpu, cpu)", pieces=[[1, 6], [7, 12]],
                lead_ins=[0, 6]), r.stdout
    _check_exact(ntsc_clip, devices, placed=False)
    out = tmp_path / "again.mp4"
    shutil.copytree(devices.with_name(f".{devices.name}.nstvid-work"), out.with_name(f".{out.name}.nstvid-work"))
    r = _run([ntsc_clip, "--style", STYLE, "-o", out, "--config", segment_config, *LOOK, "--log-format", "json"],
             cache_dir)
    assert r.returncode == 0, r.stderr
    assert said(r.stdout, "video.resuming", from_frame=FRAMES + 1, done=FRAMES), r.stdout
    assert said(r.stdout, "video.segments_stored", stored=0, segments=3, to_run=3), r.stdout
    assert "frame" not in codes(r.stdout), r.stdout  # replayed, none stylised
    _check_exact(ntsc_clip, out, placed=False)
    a, b = (np.stack(list(read_frames(path))).astype(np.float64) for path in (in_process, out))
    assert np.abs(a - b).mean() < 2.0, np.abs(a - b).mean()  # the one-worker run's frames
