"""Before the overnight run: --preview sheets, --strength, the time estimate, part of a clip
(--start/--duration/--end), and nstvid-eval's --plot; through the real command on sample_media."""
from __future__ import annotations

import json
import os
import re
import subprocess

import cv2
import numpy as np
import pytest

import nstvid
from conftest import CONTENT, PAN, PRECISION, SAMPLES, STYLE, nstvid_exe, said, set_flag
from nstvid.pipeline import sheet
from nstvid.pipeline.media.video import probe, read_frames, run_ffmpeg

SMALL = ["--size", "64", "--scales", "1", "--iterations", "3"]


def test_preview_sheet_of_a_video_then_nothing_else(tmp_path, run_nstvid):
    clip = tmp_path / "pan.mp4"
    clip.write_bytes(PAN.read_bytes())
    r = run_nstvid(clip, "--preview", "--style", STYLE, *SMALL, "--log-format", "json")
    assert r.returncode == 0, r.stderr
    assert said(r.stdout, "preview.plan", pictures=3, strengths=1, width=64, height=36), r.stdout
    sheet_file = tmp_path / "pan_starry_night_preview.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pan.mp4", sheet_file.name]  # no video
    picture = cv2.imread(str(sheet_file))
    # header, (label band + cell row) for the input and one strength, footer of 3 lines
    assert picture.shape[0] == (sheet.LINE + 6) + 2 * (sheet.LINE + 6 + 36) + (3 * sheet.LINE + 6)


def test_preview_with_several_strengths_has_a_row_each(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("NSTVID_CACHE_DIR", str(cache_dir))
    outcome = nstvid.stylise(PAN, style=STYLE, output=tmp_path / "pan.mp4", preview=2, strength="0.3,0.6,0.9",
                             size=64, scales=1, iterations=10, precision=PRECISION or "auto")
    assert outcome.labels == ["frame 1", "frame 75"] and outcome.strengths == [0.3, 0.6, 0.9]
    assert outcome.output == tmp_path / "pan_preview.png" and not (tmp_path / "pan.mp4").exists()
    picture = cv2.imread(str(outcome.output))
    assert picture.shape[0] == (sheet.LINE + 6) + 4 * (sheet.LINE + 6 + 36) + (3 * sheet.LINE + 6)
    rows = [picture[sheet.LINE + 6 + k * (sheet.LINE + 42) + sheet.LINE + 6:][:36] for k in range(4)]
    differences = [np.abs(rows[k].astype(int) - rows[k + 1]).mean() for k in range(3)]
    assert min(differences) > 1, differences  # the input and three different strengths


def test_higher_strength_means_more_style_and_less_content(tmp_path, cache_dir, monkeypatch):
    """On a shared photo: style loss falls and content loss rises as --strength goes up."""
    monkeypatch.setenv("NSTVID_CACHE_DIR", str(cache_dir))
    losses = []
    for strength in (0.2, 0.5, 0.8):
        outcome = nstvid.stylise(SAMPLES / "astronaut.jpg", style=STYLE, output=tmp_path / f"a{strength}.png",
                                 size=64, scales=1, iterations=30, tolerance=0, strength=strength,
                                 precision=PRECISION or "auto")
        losses.append((outcome.content_loss, outcome.style_loss))
    (c1, s1), (c2, s2), (c3, s3) = losses
    assert c1 < c2 < c3 and s1 > s2 > s3, losses


def _estimate_and_time(lines: list[dict]) -> tuple[float, float]:
    (estimate,) = [line for line in lines if line["code"] == "estimate"]
    (wrote,) = [line for line in lines if line["code"] == "job.wrote"]
    return estimate["estimate_seconds"], wrote["seconds"]


def test_the_estimate_comes_first_in_plain_and_json_and_is_within_2x(tmp_path, run_nstvid):
    """The sample clip's first 30 frames on this CPU: the estimate is said before the first frame,
    and comes within 2x of the job's own time (the acceptance's bound; the trial measures the
    machine as it is). Measured on an AMD EPYC (Zen 4): 4.4 s estimated, 4.8 s taken (the whole
    75 frames, as this test ran before: 9.6 and 12.1 s)."""
    out = tmp_path / "pan.mp4"
    args = [PAN, "--style", STYLE, "-o", out, *SMALL, "--frame-iterations", "3", "--duration", "30f", "--overwrite"]
    r = run_nstvid(*args, "--log-format", "json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    said_ = [line["code"] for line in lines]
    assert said_.index("estimate") < said_.index("frame"), said_
    assert lines[said_.index("estimate")]["units"] == 30, lines
    estimated, took = _estimate_and_time(lines)
    assert 0.5 <= estimated / took <= 2.0, (estimated, took)
    # The plain log's words on purpose: what a person reads before a long job.
    dry = run_nstvid(*args, "--dry-run", "--log-format", "plain")
    assert dry.returncode == 0 and re.search(r"^nstvid: 30 frames, 0 scene cuts: about \d+ s on cpu "
                                             r"\(.+ s/frame measured\)$", dry.stdout, re.M), dry.stdout
    assert f"would stylise {PAN} -> {out}" in dry.stdout, dry.stdout


def test_part_of_a_clip_is_exact_with_its_sound_and_resumes(tmp_path, run_nstvid):
    """--start 1s --duration 12f: 12 frames from frame 26 on (1 s at 25 fps), the first being the
    decoded frame there (with no iterations an independent frame is its input), sound cut to
    match; a rerun resumes the same part, another part starts fresh."""
    out = tmp_path / "part.mp4"
    args = [PAN, "--style", STYLE, "-o", out, "--size", "64", "--scales", "1", "--iterations", "0",
            "--independent", "--start", "1s", "--duration", "12f", "--keep-frames", "--log-format", "json"]
    r = run_nstvid(*args)
    assert r.returncode == 0, r.stderr
    assert said(r.stdout, "video.clip", part=[26, 37], frame_count=75, part_frames=12, start_seconds=1.0), r.stdout
    frames = list(read_frames(out))
    assert len(frames) == 12
    source = list(read_frames(PAN, size=(64, 36)))
    error = [np.abs(frames[0].astype(int) - source[k]).mean() for k in (24, 25, 26)]
    # x264 at crf 18 with 4:2:0 chroma on 64x36 frames: about 3.6/255 from the frame it encodes,
    # more than twice that from its neighbours (measured 8.4 and 8.8).
    assert error[1] < 6 and error[1] < min(error[0], error[2]) / 2, error
    info = probe(out)
    assert info.has_audio and info.container_duration <= 12 / 25 + 0.05, info
    again = run_nstvid(*args, "--overwrite")
    assert said(again.stdout, "video.resuming", from_frame=13, done=12), again.stdout
    other = run_nstvid(*set_flag(set_flag(set_flag(args, "--start", "24f"), "--duration"), "--end", "1.2s"),
                       "--overwrite")
    (fresh,) = said(other.stdout, "video.fresh")
    assert "frames" in fresh["changed"] and len(list(read_frames(out))) == 6, other.stdout


def test_bad_ranges_and_strengths_are_one_line_errors(tmp_path, run_nstvid):
    for args, words in ((["--start", "10s"], "past the end"), (["--start", "2s", "--end", "1s"], "no frames"),
                        (["--strength", "1.5"], "between 0 and 1")):
        r = run_nstvid(PAN, "--style", STYLE, "-o", tmp_path / "x.mp4", *args)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and words in r.stderr, (args, r.stderr)
    cases = [(dict(start="-1"), "negative"), (dict(start="1s", duration="-2f"), "negative"),
             (dict(duration="1s", end="2s"), "one of them"), (dict(strength="0.3,0.6"), "--preview"),
             (dict(strength="-0.1"), "between 0 and 1"), (dict(start="x"), "expected a duration")]
    for options, words in cases:
        with pytest.raises(nstvid.UsageError) as raised:
            nstvid.load_job(PAN, STYLE, tmp_path / "x.mp4", **options)
        assert words in str(raised.value), (options, raised.value)
    with pytest.raises(nstvid.UsageError, match="single video"):
        nstvid.load_job(CONTENT, STYLE, tmp_path / "x.png", start="1s")
    assert not list(tmp_path.iterdir())


def test_flicker_plot(tmp_path, run_nstvid):
    short = tmp_path / "short.mp4"
    run_ffmpeg(["-y", "-v", "error", "-i", str(PAN), "-frames:v", "6", "-an", str(short)])
    out = tmp_path / "out.mp4"
    assert run_nstvid(short, "--style", STYLE, "-o", out, *SMALL, "--frame-iterations", "2").returncode == 0
    plot = tmp_path / "flicker.png"
    r = subprocess.run([nstvid_exe("nstvid-eval"), "temporal", str(short), str(out), str(short), "--plot", str(plot)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("E_warp") == 2 and f"wrote {plot}" in r.stdout
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[1] > 600
    # Without matplotlib: one line naming the extra, exit 2, and no half-made file.
    blocker = tmp_path / "no_matplotlib"
    (blocker / "matplotlib").mkdir(parents=True)
    (blocker / "matplotlib" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    r = subprocess.run([nstvid_exe("nstvid-eval"), "temporal", str(short), str(out), "--plot", str(tmp_path / "x.png")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == "nstvid: error: --plot needs matplotlib: pip install '.[plot]' (in the nstvid folder)"
    assert not (tmp_path / "x.png").exists()
