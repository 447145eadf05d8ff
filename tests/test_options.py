"""Options through the real `nstvid` command, each shown to reach the result: --log-format json,
--quiet, --init, --pooling, --style-scale, --no-flow, --crf/--codec, --keep-frames, --image-format,
presets and a config file that names one."""
from __future__ import annotations

import json
import tomllib

import cv2
import numpy as np

from conftest import CONTENT, PAN, ROOT, SAMPLES, STYLE, TINY, clip
from nstvid.pipeline.api import load_job
from nstvid.pipeline.media.video import probe, read_frames


def image(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img.astype(np.float64)


def test_json_log_lines_parse_and_image_format(tmp_path, run_nstvid):
    """A folder job (two photos, a 3-frame clip) logged as JSON: every line parses and the lines
    carry their fields; --image-format webp writes WebP files."""
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(src / name), cv2.resize(cv2.imread(str(CONTENT)), (96, 64)))
    clip(src, PAN, 3, "clip.mp4")
    out = tmp_path / "out"
    r = run_nstvid(src, "--style", STYLE, "-o", out, *TINY, "--size", "32", "--frame-iterations", "1",
                   "--image-format", "webp", "--log-format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines and all({"time", "message"} <= set(line) for line in lines)
    done = [line for line in lines if line.get("status") == "done"]
    assert sorted(line["path"] for line in done) == sorted(str(src / n) for n in ("a.png", "b.png", "clip.mp4"))
    assert all(line["output"] and line["seconds"] > 0 for line in done)
    frames = [line for line in lines if "frame" in line]
    assert [line["frame"] for line in frames] == [1, 2, 3] and all(line["total"] == 3 for line in frames)
    assert all(set(line) >= {"seconds", "loss"} for line in frames)
    (summary,) = [line for line in lines if line["message"].startswith("summary")]
    assert (summary["done"], summary["failed"], summary["skipped"]) == (3, 0, 0)
    for name in ("a.webp", "b.webp"):
        data = (out / name).read_bytes()
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def test_quiet_prints_errors_only(tmp_path, run_nstvid):
    out = tmp_path / "cat.png"
    r = run_nstvid(CONTENT, "--style", STYLE, "-o", out, *TINY, "--quiet")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr
    assert out.is_file()
    r = run_nstvid(CONTENT, "--style", STYLE, "-o", out, *TINY, "--quiet")  # exists: an error, still said
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.splitlines()) == 1 and str(out) in r.stderr


def test_init_noise_and_file(tmp_path, run_nstvid):
    """With no iterations the result is the start image itself: --init noise is seeded noise around
    mid grey, --init FILE is that picture at the working size."""
    none = ["--size", "64", "--scales", "1", "--iterations", "0"]
    runs = {}
    for name, args in {"noise0": ["--init", "noise"], "noise0b": ["--init", "noise"],
                       "noise1": ["--init", "noise", "--seed", "1"],
                       "file": ["--init", SAMPLES / "coffee.jpg"]}.items():
        runs[name] = tmp_path / f"{name}.png"
        r = run_nstvid(CONTENT, "--style", STYLE, "-o", runs[name], *none, *args)
        assert r.returncode == 0, r.stderr
    noise = image(runs["noise0"])
    assert np.array_equal(noise, image(runs["noise0b"])) and not np.array_equal(noise, image(runs["noise1"]))
    assert abs(noise.mean() - 127.5) < 3 and 30 < noise.std() < 45  # 0.5 + 0.15 N(0, 1), clamped
    content = cv2.resize(image(CONTENT), (64, 43), interpolation=cv2.INTER_AREA)
    assert np.abs(noise - content).mean() > 30
    coffee = cv2.resize(image(SAMPLES / "coffee.jpg"), (64, 43), interpolation=cv2.INTER_AREA)
    assert np.abs(image(runs["file"]) - coffee).mean() < 2, np.abs(image(runs["file"]) - coffee).mean()


def test_pooling_and_style_scale_change_the_style_targets(tmp_path, run_nstvid):
    """--pooling avg changes the network, --style-scale the style's size: each needs targets of its
    own (computed, not the cached ones) and changes the picture."""
    env = {"NSTVID_CACHE_DIR": str(tmp_path / "cache")}
    outs = {}
    for name, args in {"default": [], "avg": ["--pooling", "avg"], "half": ["--style-scale", "0.5"]}.items():
        outs[name] = tmp_path / f"{name}.png"
        r = run_nstvid(CONTENT, "--style", STYLE, "-o", outs[name], *TINY, *args, "--log-format", "plain",
                       env=env)
        assert r.returncode == 0, r.stderr
        assert "style targets: computed" in r.stdout, r.stdout
    for name in ("avg", "half"):
        assert np.abs(image(outs[name]) - image(outs["default"])).mean() > 1, name
    again = run_nstvid(CONTENT, "--style", STYLE, "-o", tmp_path / "again.png", *TINY, "--pooling", "avg",
                       "--log-format", "plain", env=env)
    assert "style targets: cached" in again.stdout and np.array_equal(image(tmp_path / "again.png"),
                                                                     image(outs["avg"]))


def test_no_flow_leaves_the_texture_behind_the_motion(tmp_path, run_nstvid):
    """--no-flow starts each frame from the previous output where it was on screen: on a pan that
    texture lags the motion, so its warping error (measured with the input's flow) is higher than
    the flow-warped chain's. Measured on an AMD EPYC at 64 px: 8.4x (0.0204 against 0.0024)."""
    fast = clip(tmp_path, PAN, 6, "clip.mp4", every=4)
    errors = {}
    for name, args in {"flow": [], "no-flow": ["--no-flow"]}.items():
        out = tmp_path / f"{name}.mp4"
        r = run_nstvid(fast, "--style", STYLE, "-o", out, "--size", "64", "--scales", "1", "--iterations", "20",
                       "--frame-iterations", "6", *args)
        assert r.returncode == 0, r.stderr
        from nstvid.pipeline.api import temporal_error

        errors[name] = temporal_error(fast, out)["e_warp"]
    assert errors["no-flow"] > 1.5 * errors["flow"], errors


def test_crf_codec_and_keep_frames(tmp_path, run_nstvid):
    """--keep-frames keeps the resume folder; a rerun with another --crf or --codec re-encodes the
    kept frames (neither changes a frame, so nothing is recomputed) and without --keep-frames the
    folder goes."""
    source = clip(tmp_path, PAN, 5, "clip.mp4")
    out, work = tmp_path / "out.mp4", tmp_path / ".out.mp4.nstvid-work"
    common = [source, "--style", STYLE, "-o", out, "--size", "96", "--scales", "1", "--iterations", "4",
              "--frame-iterations", "2", "--log-format", "plain"]
    r = run_nstvid(*common, "--keep-frames", "--crf", "10")
    assert r.returncode == 0, r.stderr
    assert len(list(work.glob("frame_*.png"))) == 5
    fine = out.stat().st_size
    r = run_nstvid(*common, "--keep-frames", "--crf", "40", "--overwrite")
    assert r.returncode == 0 and "resuming at frame 6: 5 frames already stylised" in r.stdout, r.stdout
    assert "frame 1/" not in r.stdout  # replayed, not stylised again
    assert out.stat().st_size < 0.7 * fine
    r = run_nstvid(*common, "--codec", "mpeg4", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert probe(out).video_codec == "mpeg4" and len(list(read_frames(out))) == 5
    assert not work.exists()


def test_presets_and_a_config_file_that_names_one(tmp_path, run_nstvid):
    """fast and quality set what their files say; a job file may name its preset (its own values
    win over the preset's, flags over both); and the real command runs what the preset says."""
    for name in ("fast", "quality", "balanced"):
        values = tomllib.loads((ROOT / "configs" / f"{name}.toml").read_text())
        settings = load_job(CONTENT, STYLE, tmp_path / "x.png", preset=name).settings
        assert {k: getattr(settings, k) for k in values} == values, name
    job_file = tmp_path / "job.toml"
    job_file.write_text('preset = "fast"\nsize = 48\noutput_size = 48\ntolerance = 0\nlog_format = "plain"\n')
    settings = load_job(CONTENT, STYLE, tmp_path / "x.png", config=job_file).settings
    assert (settings.size, settings.iterations, settings.scales, settings.frame_iterations) == (48, 80, 2, 25)
    assert load_job(CONTENT, STYLE, tmp_path / "x.png", config=job_file, iterations=5).settings.iterations == 5
    out = tmp_path / "cat.png"
    r = run_nstvid(CONTENT, "--style", STYLE, "-o", out, "--config", job_file)
    assert r.returncode == 0, r.stderr
    assert "optimising iteration 80/80" in r.stdout, r.stdout  # fast's 80 iterations, one 48 px scale
    assert cv2.imread(str(out)).shape[:2] == (32, 48)
