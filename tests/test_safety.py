"""Cron-grade safety through the real `nstvid` command (issue 24): one run per output, damaged state
that heals (resume frames, the folder manifest, meta.json), and checks that come before any work.
The Ray side (a private instance that stays private, a stale record) is in test_cluster.py."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

from conftest import CONTENT, PAN, STYLE, clip, codes, command, count_frames, log, nstvid_env, said
from nstvid.pipeline.media.images import read_image

TINY = ["--size", "32", "--scales", "1", "--iterations", "2", "--frame-iterations", "1", "--log-format", "plain"]


def test_two_runs_on_one_video_output_the_second_exits_3_and_the_first_finishes(tmp_path, cache_dir):
    """Run B, with other settings, on the output run A is making: B would have called A's resume
    frames stale and deleted them. It exits 3 naming A, before touching anything; A finishes with
    every frame, and leaves no lock behind. (A is held with SIGSTOP while B runs, so that A cannot
    finish first however fast the machine.)"""
    source = clip(tmp_path, PAN, 4, "pan4.mp4")
    out = tmp_path / "out.mp4"
    work = tmp_path / ".out.mp4.nstvid-work"
    lock = tmp_path / ".out.mp4.nstvid.lock"
    env = nstvid_env(cache_dir)
    first = subprocess.Popen(command(source, "--style", STYLE, "-o", out, *TINY), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not (work / "meta.json").exists():  # A's resume folder is open
            assert first.poll() is None, first.communicate()
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)
        try:
            assert json.loads(lock.read_text())["pid"] == first.pid
            second = subprocess.run(command(source, "--style", STYLE, "-o", out, *TINY, "--size", "48",
                                            "--log-format", "json"),
                                    env=env, capture_output=True, text=True, timeout=300)
        finally:
            first.send_signal(signal.SIGCONT)
        stdout, stderr = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 3, second.stdout + second.stderr
    lines = [line["message"] for line in log(second.stdout) if line["level"] == "error"]  # JSON: on the log's stream
    assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and str(lock) in lines[0], second.stdout
    assert "video.fresh" not in codes(second.stdout), second.stdout
    assert first.returncode == 0, stdout + stderr
    assert count_frames(out) == 4
    assert not lock.exists() and not work.exists()


def test_damaged_resume_frames_are_redone_from_the_frame_before(tmp_path, run_nstvid):
    """One saved frame cut short (as a crash leaves it), another damaged inside: the rerun resumes,
    stylises each of them again with one warning apiece, and the output has every frame. No
    library line (OpenCV, libpng) reaches stderr."""
    source = clip(tmp_path, PAN, 6, "pan6.mp4")
    out = tmp_path / "out.mp4"
    work = tmp_path / ".out.mp4.nstvid-work"
    args = [source, "--style", STYLE, "-o", out, *TINY, "--keep-frames"]
    assert run_nstvid(*args).returncode == 0
    for stored in [work / "segments.json", *work.glob("*.mp4")]:  # as a crash inside the segment leaves it
        stored.unlink()
    cut = work / "frame_000002.png"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    inside = work / "frame_000004.png"
    data = bytearray(inside.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte in the pixel data: the file ends as a whole PNG does
    inside.write_bytes(bytes(data))
    out.unlink()
    r = run_nstvid(*args, "--log-format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr == "", r.stderr
    (damaged,) = said(r.stdout, "video.frames_damaged")  # cut short: found before the run
    (unreadable,) = said(r.stdout, "video.frame_unreadable")  # whole but undecodable: found on reading it
    assert damaged["frames"] == [3] and unreadable["path"].endswith("frame_000004.png"), (damaged, unreadable)
    stylised = [line["frame"] for line in said(r.stdout, "frame", total=6)]
    assert {3, 5} <= set(stylised) and 4 not in stylised, r.stdout
    assert count_frames(out) == 6
    for saved in (cut, inside):  # saved again, whole
        assert read_image(saved).size == (18, 32)


def test_a_truncated_manifest_is_rebuilt_from_the_outputs_own_records(tmp_path, run_nstvid):
    """The manifest cut short: the outputs prove their origin (input hash and settings digest in a
    PNG text chunk, the video's comment tag), so the rerun exits 0, redoes nothing and fails
    nothing, and says so; an output that is gone is made again."""
    from nstvid.pipeline.folder.manifest import MANIFEST_NAME

    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.json"
    src.mkdir()
    (src / "cat.png").write_bytes(CONTENT.read_bytes())
    (src / "astronaut.jpg").write_bytes((CONTENT.parent / "astronaut.jpg").read_bytes())
    clip(src, PAN, 3, "pan.mp4")
    args = [src, "--style", STYLE, "-o", out, "--report", report, *TINY, "--log-format", "json"]
    assert run_nstvid(*args).returncode == 0
    manifest = out / MANIFEST_NAME

    def rerun():
        manifest.write_bytes(manifest.read_bytes()[:60])
        r = run_nstvid(*args)
        assert r.returncode == 0, r.stdout + r.stderr
        assert {"manifest.unreadable", "folder.proven"} <= set(codes(r.stdout)), r.stdout
        return r, json.loads(report.read_text())

    r, data = rerun()
    assert (data["done"], data["skipped"], data["failed"]) == (0, 3, 0), data
    assert "folder.nothing_to_do" in codes(r.stdout), r.stdout
    assert not {"style_targets.computed", "style_targets.cached"} & set(codes(r.stdout)), r.stdout
    assert set(json.loads(manifest.read_text())["files"]) == {"cat.png", "astronaut.jpg", "pan.mp4"}
    (out / "cat.png").unlink()
    r, data = rerun()
    assert (data["done"], data["skipped"], data["failed"]) == (1, 2, 0), data
    assert said(r.stdout, "file.done", path=src / "cat.png"), r.stdout


def test_a_bad_codec_or_crf_is_refused_before_any_work(tmp_path, run_nstvid):
    """Exit 2 and one line naming the option, before a frame is stylised or a file is made."""
    source = clip(tmp_path, PAN, 3, "pan3.mp4")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "cat.png").write_bytes(CONTENT.read_bytes())
    cases = [([source, "-o", tmp_path / "a.mp4", "--codec", "nope264"], "--codec nope264"),
             ([folder, "-o", tmp_path / "out", "--crf", "99"], "--crf 99: libx264 takes 0-51")]
    for args, words in cases:
        r = run_nstvid(*args, "--style", STYLE, *TINY, "--log-format", "json")
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        errors = [line for line in log(r.stdout) if line["level"] == "error"]  # JSON: errors on the log's stream
        assert len(errors) == 1 and words in errors[0]["message"] and not r.stderr, (args, r.stdout, r.stderr)
        assert not {"frame", "engine.ready"} & set(codes(r.stdout)), r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "pan3.mp4"]


_CUT_SHORT = """
import json, resource, signal, sys
from pathlib import Path
from nstvid.pipeline.video.workdir import WorkDir

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
try:
    WorkDir(Path(sys.argv[1]), json.loads(sys.argv[2])).open()
except Exception as e:
    print(type(e).__name__, e)
"""


def test_meta_json_is_written_whole_or_not_at_all(tmp_path):
    """meta.json's write fails mid-way (a file-size limit below its size, as a full disk would):
    what stands at meta.json is never a part of it, which the next run would take for another
    job's key and discard the frames by; the next run starts a work folder that works."""
    from nstvid.pipeline.video.workdir import WORK_VERSION, WorkDir

    key = {"version": WORK_VERSION, "input": "0" * 64, "settings": "s" * 16, "size": [8, 8],
           "frames": "x" * 4000}
    out = tmp_path / "out.mp4"
    meta = tmp_path / ".out.mp4.nstvid-work" / "meta.json"
    r = subprocess.run([sys.executable, "-c", _CUT_SHORT, str(out), json.dumps(key), "1024"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OutputError") and "meta.json" in r.stdout, r.stdout  # the write did fail
    assert not meta.exists() or json.loads(meta.read_text()) == key
    assert not [p for p in meta.parent.iterdir() if p.name != "meta.json"]  # no temp file left
    work = WorkDir(out, key)
    assert work.open() == "" and json.loads(meta.read_text()) == key
    work.save(0, __import__("numpy").zeros((8, 8, 3), "uint8"))
    assert WorkDir(out, key).open() == "" and work.saved_indices() == {0}


def test_a_single_output_lock_left_by_a_killed_run_is_taken_over(tmp_path, run_nstvid):
    """A lock whose holder is gone (kill -9) does not block the output: the next run takes it
    over with a warning that names the old holder, and releases it at the end."""
    out = tmp_path / "out.png"
    lock = tmp_path / ".out.png.nstvid.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "earlier"}))
    r = run_nstvid(CONTENT, "--style", STYLE, "-o", out, *TINY, "--log-format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert said(r.stdout, "lock.stale_taken", pid=dead.pid), r.stdout
    assert out.is_file() and not lock.exists()


def test_image_records_of_origin_read_back(tmp_path):
    """with_record / read_record, for the formats that hold one (PNG tEXt, JPEG comment)."""
    from nstvid.pipeline.media.images import read_record, with_record, write_image

    picture = read_image(CONTENT)
    for ext in (".png", ".jpg"):
        path = tmp_path / f"cat{ext}"
        write_image(path, picture, record='{"input": "a", "settings": "b"}')
        assert read_record(path) == '{"input": "a", "settings": "b"}'
        assert read_image(path).size == picture.size
        write_image(path, picture)
        assert read_record(path) is None
    assert with_record(b"RIFF....WEBP", ".webp", "x") == b"RIFF....WEBP"
