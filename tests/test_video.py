"""Video through the real `nstvid` command: round trip, resume after kill or SIGTERM, bad inputs, a
disk too full, how a clip is split for --devices (flicker: test_flicker.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from conftest import CUT, ORBIT, PAN, STYLE, clip, codes, command, count_frames, said, set_flag, settings
from nstvid.pipeline.media.video import TruncatedVideoError, probe, read_frames, run_ffmpeg

QUICK = ["--size", "64", "--scales", "1", "--iterations", "4", "--frame-iterations", "2"]


def test_round_trip_keeps_frames_rate_duration_audio(tmp_path, run_nstvid):
    source = clip(tmp_path, PAN, 15, "pan15.mp4")
    out = tmp_path / "pan_starry.mp4"
    r = run_nstvid(source, "--style", STYLE, "-o", out, *QUICK)
    assert r.returncode == 0, r.stderr
    src, dst = probe(source), probe(out)
    assert dst.fps == src.fps == Fraction(25)
    assert count_frames(out) == count_frames(source) == 15
    assert abs(dst.duration - src.duration) <= 1 / float(src.fps)
    assert dst.has_audio and src.has_audio
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), list(tmp_path.iterdir())
    # No audio in: no audio out, no error; the default name sits beside the input.
    silent = clip(tmp_path, ORBIT, 6, "orbit.mp4", audio=False)
    r = run_nstvid(silent, "--style", STYLE, *QUICK)
    assert r.returncode == 0, r.stderr
    assert not probe(tmp_path / "orbit_starry_night.mp4").has_audio


def _start_until_frames(tmp_path: Path, cache_dir: Path, frames: int, *, stored: int = 0, extra=()):
    """Start a video run on a 24-frame clip in the background; return (process, args, env, output,
    work folder, clip) once `frames` frames are saved (in the segment in progress) and `stored`
    segments recorded, checking all along that no partial file stands at the output."""
    source = clip(tmp_path, PAN, 24, "pan24.mp4")
    out = tmp_path / "out.mp4"
    work = tmp_path / ".out.mp4.nstvid-work"
    args = command(source, "--style", STYLE, "-o", out, *QUICK, *extra)

    def records() -> dict:
        try:
            return json.loads((work / "segments.json").read_text())
        except (OSError, ValueError):
            return {}

    def in_progress() -> int:
        """Frames saved past the stored segments: those of the segment in progress. (Counting every
        saved frame let the kill land between a segment's record and the dropping of its frames.)"""
        done = max((record["span"][1] for record in records().values()), default=0)
        return sum(int(p.stem[6:]) >= done for p in work.glob("frame_*.png"))

    env = {**os.environ, "NSTVID_CACHE_DIR": str(cache_dir)}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and (in_progress() < frames or len(records()) < stored):
        assert not out.exists(), "a partial file stood at the output path"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc, args, env, out, work, source


def test_sigkill_then_rerun_resumes(tmp_path, cache_dir):
    """In segments of 8 (segment_frames from a config file): killed with one segment stored and
    frames of the next saved, the rerun takes the stored segment (of its frames only the last, the
    next one's anchor, is left on disk) and the saved frames, and stylises only the rest."""
    config = tmp_path / "segments.toml"
    config.write_text("segment_frames = 8\n")
    proc, args, env, out, work, source = _start_until_frames(tmp_path, cache_dir, 2, stored=1,
                                                             extra=["--config", config, "--log-format", "json"])
    proc.kill()
    proc.wait()
    assert not out.exists()
    stored = json.loads((work / "segments.json").read_text())
    saved = {int(p.stem[6:]) for p in work.glob("frame_*.png")}
    assert {i for i in saved if i < 8 * len(stored)} == {8 * k + 7 for k in range(len(stored))}, saved
    done = {i for i in range(8 * len(stored))} | saved
    first_missing = min(set(range(25)) - done)
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert said(r.stdout, "video.resuming", from_frame=first_missing + 1, done=len(done)), r.stdout
    assert said(r.stdout, "video.segments_stored", stored=len(stored), segments=3), r.stdout
    assert len(said(r.stdout, "frame", total=24)) == codes(r.stdout).count("frame") == 24 - len(done), r.stdout
    assert count_frames(out) == count_frames(source) == 24
    assert not work.exists()  # removed on success (no --keep-frames)


def test_sigterm_saves_frame_and_exits_143_and_settings_change_starts_fresh(tmp_path, cache_dir):
    proc, args, env, out, work, _ = _start_until_frames(tmp_path, cache_dir, 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert not out.exists()
    assert len(list(work.glob("frame_*.png"))) >= 3
    other = set_flag(set_flag(args, "--frame-iterations", 3), "--log-format", "json")  # other settings
    r = subprocess.run(other, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (fresh,) = said(r.stdout, "video.fresh")
    assert "settings" in fresh["changed"], fresh


def _one_line_error(result, name: str, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0], result.stderr
    return lines[0]


def test_bad_videos(tmp_path, run_nstvid):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    _one_line_error(run_nstvid(empty, "--style", STYLE, *QUICK), str(empty), 2)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    _one_line_error(run_nstvid(text, "--style", STYLE, *QUICK), str(text), 2)
    audio = tmp_path / "tone.m4a"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(audio)],
               path=audio)
    line = _one_line_error(run_nstvid(audio, "--style", STYLE, *QUICK), str(audio), 2)
    assert "video" in line
    # Truncated: the decodable frames are processed, the error says so, exit 4.
    mkv = tmp_path / "full.mkv"
    run_ffmpeg(["-y", "-i", str(clip(tmp_path, PAN, 30, "pan30.mp4")), "-c", "copy", str(mkv)], path=mkv)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(mkv.read_bytes()[: mkv.stat().st_size // 2])
    decodable = 0
    try:
        for _ in read_frames(cut):
            decodable += 1
    except TruncatedVideoError:
        pass
    out = tmp_path / "cut_out.mp4"
    line = _one_line_error(run_nstvid(cut, "--style", STYLE, "-o", out, *QUICK), str(cut), 4)
    assert "truncated" in line
    assert 5 < count_frames(out) == decodable < 30


def test_a_disk_too_full_for_the_resume_frames_fails_at_the_first_frame(tmp_path, cache_dir, monkeypatch):
    """The first saved frame's size times the frames still to come is checked against the free
    space: the job stops early with a one-line error instead of filling the disk overnight, and a
    rerun with room resumes from what was saved. (Free space is faked: a full disk cannot be made
    in CI.)"""
    import shutil

    import pytest

    from nstvid.pipeline.errors import OutputError
    from nstvid.pipeline.prepare import prepare
    from nstvid.pipeline.video.orchestrator import stylise_video

    monkeypatch.setenv("NSTVID_CACHE_DIR", str(cache_dir))
    short = clip(tmp_path, PAN, 6, "short.mp4")
    prepared = prepare(settings(styles=(str(STYLE),), size=64, scales=1, iterations=3, frame_iterations=2))
    out = tmp_path / "out.mp4"
    real = shutil.disk_usage
    with monkeypatch.context() as m:
        m.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=10_000))
        with pytest.raises(OutputError) as failed:
            stylise_video(prepared, short, out)
    message = str(failed.value)
    assert "\n" not in message and "disk too full" in message and "5 frames" in message, message
    assert ".out.mp4.nstvid-work" in message and "10 KB is free" in message
    assert not out.exists()
    assert (tmp_path / ".out.mp4.nstvid-work" / "frame_000000.png").is_file()
    outcome = stylise_video(prepared, short, out)
    assert outcome.resumed_from >= 1 and outcome.frames == 6 and count_frames(out) == 6


def test_split_clip_prefers_scene_cuts_and_leads_in_elsewhere():
    from nstvid.pipeline.video.pieces import LEAD_IN, Piece, split_clip

    scores = [0.05] * 99
    assert split_clip(100, 1, scores, 0.35) == [Piece(0, 0, 100)]  # one worker: one chain
    pieces = split_clip(100, 2, scores, 0.35)
    assert [(p.keep_from, p.stop_at) for p in pieces] == [(0, 50), (50, 100)]
    assert pieces[1].start == 50 - LEAD_IN  # no cut: the second chain starts early, cross-faded
    scores[44] = 0.8  # a cut between frames 44 and 45: two shots of about a share each, no seam
    pieces = split_clip(100, 2, scores, 0.35)
    assert [(p.start, p.keep_from, p.stop_at) for p in pieces] == [(0, 0, 45), (45, 45, 100)]
    scores[9] = 0.8  # and one between 9 and 10: every cut is a free piece start, the long shot waits
    assert [(p.start, p.keep_from, p.stop_at) for p in split_clip(100, 2, scores, 0.35)] == [
        (0, 0, 10), (10, 10, 45), (45, 45, 100)]
    assert len(split_clip(3, 4, [0.0, 0.0], 0.35)) == 3  # never an empty piece
    # A shot far over a share is halved until it is not: 4 workers, one 100-frame shot.
    assert [(p.keep_from, p.stop_at) for p in split_clip(100, 4, [0.0] * 99, 0.35)] == [
        (0, 25), (25, 50), (50, 75), (75, 100)]


def test_the_plan_covers_every_frame_once_in_order():
    """Segments' encoded ranges and seams tile the clip; each segment after a piece's first starts
    where the one before it stopped (its anchor), and raw frames are those a seam blends."""
    from nstvid.pipeline.video.pieces import Seam, lay_out_clip

    for frames, workers, cuts in ((10, 2, []), (100, 1, []), (130, 3, [40]), (300, 4, [7, 150]), (5, 8, [])):
        scores = [0.8 if i + 1 in cuts else 0.0 for i in range(frames - 1)]
        plan = lay_out_clip(frames, workers, scores, 0.35, 24)
        covered = []
        for part in plan.parts():
            covered += list(range(part.first, part.stop) if isinstance(part, Seam)
                            else range(part.encode_from, part.encode_to))
        assert covered == list(range(frames)), (frames, workers, cuts)
        for piece, segments in zip(plan.pieces, plan.segments):
            assert segments[0].first == piece.start and segments[-1].stop == piece.stop_at
            assert all(a.stop == b.first for a, b in zip(segments, segments[1:]))
            assert all(s.frames <= 24 for s in segments)
        seam_frames = {i for seam in plan.seams for i in range(seam.first, seam.stop)}
        raw = {i for segments in plan.segments for s in segments for i in s.raw_indices()
               if i != s.stop - 1}
        assert raw == seam_frames, (frames, workers, cuts)




def test_a_scan_in_ranges_from_seeks_merges_into_the_one_decodes(tmp_path):
    """What each Ray worker of a split scan runs (clip.scan_part), here in this process: cut.mp4
    looped to 30 frames (scene cuts, B-frames, a keyframe every 8) in three ranges, each decoded
    from a seek with the frame before it, merges into the one decode's count and scores, to the
    bit; also for a --start part. A range past the real end (the container's count too high)
    decodes nothing and changes nothing; a range that ended early, followed by one with frames, is
    refused (the caller scans serially)."""
    from nstvid.pipeline.settings import RunOptions
    from nstvid.pipeline.video.clip import TO_THE_END, ScanPart, merge_scans, open_clip, scan, scan_part

    source = tmp_path / "cut.mp4"
    run_ffmpeg(["-y", "-stream_loop", "1", "-i", str(CUT), "-frames:v", "30", "-c:v", "libx264",
                "-bf", "3", "-g", "8",
                "-an", str(source)], path=source)
    for part in (open_clip(source), open_clip(source, RunOptions(start="5f", duration="20f"))):
        frames, scores, truncated = scan(part)
        assert frames == part.span.frames if part.span else frames == 30
        bounds = [0, 7, 13, frames + 5, TO_THE_END]  # the third range reaches past the end: the fourth has none
        parts = [scan_part(part, a, b) for a, b in zip(bounds, bounds[1:])]
        assert [p.frames for p in parts] == [7, 6, frames - 13, 0]
        assert merge_scans(part, parts) == (frames, scores, None) and truncated is None
        assert max(scores) > 0.35  # the cut is in the scores compared
    short = [ScanPart(0, 5, [0.1] * 4), ScanPart(7, 3, [0.1] * 3)]  # frames 5-6 missing
    assert merge_scans(part, short) is None
    assert merge_scans(part, [ScanPart(0), ScanPart(10)]) is None  # nothing decoded: the serial scan says why


def test_revealed_start_reaches_the_chain_through_the_command(tmp_path, run_nstvid):
    """`revealed` from a config file decides what newly revealed pixels start from, through the
    real command. With no iterations on later frames, a frame is its start: runs with `content`
    and `inpaint` differ only where the pan brings in new pixels, and there the content start is
    the photo while the inpainted one is the painting carried in from its neighbours."""
    fast = tmp_path / "fast.mp4"  # every 8th frame: the pan brings in a strip a frame
    run_ffmpeg(["-y", "-i", str(PAN), "-vf", r"select=not(mod(n\,8)),setpts=N/25/TB", "-frames:v", "3",
                "-an", "-c:v", "libx264", "-crf", "10", str(fast)], path=PAN)
    outs = {}
    for how in ("content", "inpaint"):
        config = tmp_path / f"{how}.toml"
        config.write_text(f'revealed = "{how}"\n')
        out = tmp_path / f"{how}.mp4"
        r = run_nstvid(fast, "--style", STYLE, "--config", config, "--size", "96", "--scales", "1",
                       "--iterations", "20", "--frame-iterations", "0", "--precision", "fp32", "-o", out)
        assert r.returncode == 0, r.stderr
        outs[how] = [f.astype(np.float64) for f in read_frames(out)]
    photo = [f.astype(np.float64) for f in read_frames(fast, size=(96, 54))]
    # The same first frame, up to x264, which codes a frame with an eye on the next ones (mb-tree)
    assert np.abs(outs["content"][0] - outs["inpaint"][0]).mean() < 4
    changed = np.abs(outs["content"][2] - outs["inpaint"][2]).mean(-1) > 20
    assert 0.005 < changed.mean() < 0.25, changed.mean()  # a strip, not the frame (measured: 4.8%)
    to_photo = {how: np.abs(frames[2] - photo[2]).mean(-1)[changed].mean() for how, frames in outs.items()}
    assert to_photo["content"] < 0.5 * to_photo["inpaint"], to_photo  # measured: 14 against 55 levels


def test_a_resume_folder_of_another_version_or_settings_starts_fresh_and_says_why(tmp_path):
    """Frames saved under another work-folder version or other frame settings are discarded with a
    reason; the same key resumes."""
    from nstvid.pipeline.video.workdir import WORK_VERSION, WorkDir

    key = {"version": WORK_VERSION, "settings": settings(styles=(str(STYLE),)).digest("video_frames", []),
           "size": [8, 8], "frames": None}
    frame = np.zeros((8, 8, 3), np.uint8)
    older = WorkDir(tmp_path / "out.mp4", key | {"version": WORK_VERSION - 1})
    assert older.open() == ""
    older.save(0, frame)
    fresh = WorkDir(tmp_path / "out.mp4", key)
    assert "another nstvid version" in fresh.open() and not fresh.saved_indices()
    fresh.save(0, frame)
    assert WorkDir(tmp_path / "out.mp4", key).open() == "" and fresh.saved_indices() == {0}
    changed = WorkDir(tmp_path / "out.mp4", key | {"settings": "other"})
    assert "settings" in changed.open() and not changed.saved_indices()
