"""Issue 41, a new user's first day: phone photos (HEIC, AVIF) and GIFs, nstvid-eval on a part of a
clip, odd media (panoramas, .webm, .gif out), and -o DIR/ for one input; through the real commands."""
from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pillow_heif  # the test extra installs it: HEIC is tested in CI, never skipped
import pytest
from PIL import Image

import nstvid
from conftest import CONTENT, SAMPLES, STYLE, TINY, codes, log, nstvid_exe, said
from nstvid.pipeline.media.images import read_image
from nstvid.pipeline.media.video import gif_loop, probe, run_ffmpeg

PAN = SAMPLES / "pan.mp4"  # 75 frames, 25 fps, 320x180


def phone_photos(folder: Path) -> dict[str, Path]:
    """A 96x64 AVIF (Pillow's own encoder) and HEIC (pillow-heif's) of the sample cat, an animated
    GIF of three frames that loops twice more, and a text file, in folder."""
    pillow_heif.register_heif_opener()
    folder.mkdir(parents=True, exist_ok=True)
    cat = Image.open(CONTENT).convert("RGB").resize((96, 64))
    files = {name: folder / name for name in ("cat.avif", "cat.heic", "wave.gif", "notes.txt")}
    cat.save(files["cat.avif"])
    cat.save(files["cat.heic"])
    frames = [cat.rotate(angle) for angle in (0, 5, 10)]
    frames[0].save(files["wave.gif"], save_all=True, append_images=frames[1:], duration=100, loop=2)
    files["notes.txt"].write_text("holiday photos\n")
    return files


def test_one_input_into_an_existing_folder_is_named_there(tmp_path, run_nstvid):
    """-o DIR/ for one photo writes DIR/NAME_STYLE.png (Real-ESRGAN, demucs, whisper do the same);
    a name ending in / that does not exist yet is a folder too (a dry run says so)."""
    existing = tmp_path / "out"
    existing.mkdir()
    r = run_nstvid(CONTENT, "--style", STYLE, *TINY, "--size", "32", "-o", existing)
    assert r.returncode == 0, r.stderr
    assert read_image(existing / "chelsea_starry_night.png").size == (21, 32)
    new = tmp_path / "new"
    r = run_nstvid(CONTENT, "--style", STYLE, *TINY, "-o", f"{new}/", "--dry-run", "--log-format", "plain")
    assert r.returncode == 0 and f"-> {new / 'chelsea_starry_night.png'}" in r.stdout, r.stdout + r.stderr
    again = run_nstvid(CONTENT, "--style", STYLE, *TINY, "--size", "32", "-o", existing)
    assert again.returncode == 2 and "--overwrite" in again.stderr and Path(CONTENT).exists()


def test_avif_and_heic_photos_are_photos(tmp_path, run_nstvid):
    """An AVIF or HEIC photo is ISO-BMFF as an MP4 is; its ftyp brands make it a photo: a .png out,
    not a one-frame .mp4, on its own and in a folder. The folder's GIF and text file are left out,
    counted in the summary and named in the report."""
    files = phone_photos(tmp_path / "phone")
    r = run_nstvid(files["cat.avif"], "--style", STYLE, *TINY, "--size", "32", "-o", f"{tmp_path}/")
    assert r.returncode == 0, r.stderr
    assert read_image(tmp_path / "cat_starry_night.png").size == (21, 32)
    page = tmp_path / "report.html"  # the JSON report's left_out: tests/test_folder.py's tree
    r = run_nstvid(tmp_path / "phone", "--style", STYLE, *TINY, "--size", "32", "-o", tmp_path / "out",
                   "--report", page, "--log-format", "plain")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "cat.avif.png", "cat.heic.png"]  # both would be cat.png: each keeps its full name
    assert "done=2 skipped=0 failed=0 left_out=2" in r.stdout
    assert "2 left out, neither image nor video (notes.txt, wave.gif)" in r.stdout
    assert "Left out (2)" in page.read_text() and "<code>wave.gif</code>" in page.read_text()


def test_heic_without_its_decoder_is_one_line_naming_the_install(tmp_path, run_nstvid):
    files = phone_photos(tmp_path)
    hidden = tmp_path / "hide"  # pillow_heif that cannot be imported, as where it is not installed
    hidden.mkdir()
    (hidden / "pillow_heif.py").write_text("raise ImportError('not installed')\n")
    r = run_nstvid(files["cat.heic"], "--style", STYLE, *TINY, env={"PYTHONPATH": str(hidden)})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{files['cat.heic']}: a HEIC photo: decoding it needs pillow-heif (pip install '.[heif]'" in r.stderr


def test_dockerfile_names_the_makefiles_versions_and_copies_files_that_exist():
    """The KubeRay image's recipe, checked without building it (base images cannot be pulled here)."""
    root = Path(__file__).resolve().parent.parent
    makefile, dockerfile = (root / "Makefile").read_text(), (root / "Dockerfile").read_text()
    python = re.search(r"^PYTHON_VERSION := (\S+)", makefile, re.M)[1]
    assert f"ARG PYTHON_VERSION={python}\n" in dockerfile and "FROM python:${PYTHON_VERSION}-slim" in dockerfile
    torch = re.search(r"^TORCH := (.+)$", makefile, re.M)[1]
    assert f"pip install --no-cache-dir {torch}\n" in dockerfile
    copied = [word for line in dockerfile.splitlines() if line.startswith("COPY ") for word in line.split()[1:-1]]
    assert copied and all((root / name).exists() for name in copied), copied


def test_vgg19_takes_min_side_and_not_one_less():
    """MIN_SIDE is the network's own: four 2x2 poolings before relu5_1 (shapes only, meta device)."""
    import torch

    from nstvid.pipeline.features import LAYER_INDEX, vgg19_body
    from nstvid.pipeline.settings import MIN_SIDE

    body = vgg19_body(LAYER_INDEX["relu5_1"])
    assert body(torch.empty(1, 3, MIN_SIDE, 40, device="meta")).shape[-2:] == (1, 2)
    with pytest.raises(RuntimeError, match="too small"):
        body(torch.empty(1, 3, MIN_SIDE - 1, 40, device="meta"))


def test_a_panorama_keeps_a_short_side_vgg19_takes_and_a_sliver_is_one_line(tmp_path, run_nstvid):
    """1600x64 at --size 200 would be 200x8, which VGG19 cannot pool: the working size is 400x16 (the
    short side at MIN_SIDE, the long side past --size for it), delivered at the source's 1600x64. A
    9000x1 sliver cannot be: one line."""
    panorama = tmp_path / "panorama.mp4"
    run_ffmpeg(["-v", "error", "-f", "lavfi", "-i", "testsrc=size=1600x64:rate=10", "-frames:v", "3",
                "-pix_fmt", "yuv420p", str(panorama)], path=panorama)
    out = tmp_path / "out.mp4"
    r = run_nstvid(panorama, "--style", STYLE, *TINY, "--frame-iterations", "1", "--size", "200", "-o", out,
                   "--output-size", "source", "--log-format", "json")
    assert r.returncode == 0, r.stderr
    assert said(r.stdout, "video.clip", working=[400, 16]), r.stdout
    info = probe(out)
    assert (info.width, info.height, info.frame_count) == (1600, 64, 3)
    sliver = tmp_path / "sliver.png"
    cv2.imwrite(str(sliver), np.full((1, 9000, 3), 128, np.uint8))
    r = run_nstvid(sliver, "--style", STYLE, *TINY, "-o", tmp_path / "s.png")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"{sliver}: 9000x1 is too thin to stylise: VGG19 needs a short side of at least 16 px" in r.stderr


def test_an_animated_gif_in_and_out_and_webm_gets_vp9(tmp_path, run_nstvid):
    """A GIF is a video in; -o .gif makes one palette for the clip and keeps the input's loop count;
    -o .webm with the default codec is VP9, as the container holds."""
    files = phone_photos(tmp_path)
    gif = tmp_path / "out.gif"
    r = run_nstvid(files["wave.gif"], "--style", STYLE, *TINY, "--frame-iterations", "1", "--size", "48", "-o", gif)
    assert r.returncode == 0, r.stderr
    info = probe(gif)
    assert (info.video_codec, info.width, info.height, info.frame_count) == ("gif", 48, 32, 3)
    assert gif_loop(gif) == gif_loop(files["wave.gif"]) == 2 and not list(tmp_path.glob(".out.gif*"))
    webm = tmp_path / "out.webm"
    r = run_nstvid(files["wave.gif"], "--style", STYLE, *TINY, "--frame-iterations", "1", "--size", "48", "-o", webm)
    assert r.returncode == 0, r.stderr
    assert probe(webm).video_codec == "vp9"
    r = run_nstvid(files["wave.gif"], "--style", STYLE, *TINY, "--codec", "libx264", "-o", tmp_path / "x.webm")
    assert r.returncode == 2 and "a .webm file cannot hold libx264 video" in r.stderr, r.stderr


def test_a_gif_output_is_480_px_unless_output_size_says_otherwise(tmp_path, cache_dir, monkeypatch):
    """A GIF's output and working size are bounded to 480 px unless the options name them; a clip
    smaller than that stays at its own size (a 96x64 GIF came back at 480x320 before); other
    outputs come at the source's size (output_size None), painted at 512."""
    monkeypatch.setenv("NSTVID_CACHE_DIR", str(cache_dir))
    files = phone_photos(tmp_path)
    large = tmp_path / "large.mp4"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc=size=960x540:rate=10", "-frames:v", "2", "-pix_fmt", "yuv420p",
                str(large)], path=large)

    def sizes(source, output, **options):
        s = nstvid.load_job(source, STYLE, tmp_path / output, **options).settings
        return s.size, s.output_size

    assert sizes(large, "a.gif") == (480, 480)
    assert sizes(large, "a.gif", output_size=720) == (480, 720)
    assert sizes(large, "a.gif", size=640) == (640, 480)
    assert sizes(files["wave.gif"], "b.gif") == (480, None)
    assert sizes(large, "a.mp4") == (512, None)


def test_nstvid_eval_compares_a_part_with_its_own_span(tmp_path, run_nstvid):
    """README's trial workflow: a part made with --start 1s --duration 8f, then nstvid-eval temporal
    on the whole clip and the part. The span comes from the part's comment tag, or from the same
    flags; without either, one line says what to pass."""
    part = tmp_path / "part.mp4"
    r = run_nstvid(PAN, "--style", STYLE, *TINY, "--frame-iterations", "1", "--start", "1s", "--duration", "8f",
                   "-o", part)
    assert r.returncode == 0, r.stderr
    evaluate = [nstvid_exe("nstvid-eval"), "temporal", PAN]
    recorded = subprocess.run([*evaluate, part, "--json"], capture_output=True, text=True)
    assert recorded.returncode == 0, recorded.stderr
    report = json.loads(recorded.stdout)
    assert report["input_frames"] == [25, 33] and len(report["pairs"]) == 7
    bare = tmp_path / "bare.mp4"  # the same frames without nstvid's comment tag
    run_ffmpeg(["-v", "error", "-i", str(part), "-map_metadata", "-1", "-c", "copy", str(bare)], path=bare)
    r = subprocess.run([*evaluate, bare], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"{bare}: 8 frames against the 75 of {PAN}: pass the part it was made from" in r.stderr
    flagged = subprocess.run([*evaluate, bare, "--json", "--start", "1s", "--duration", "8f"], capture_output=True,
                             text=True)
    assert flagged.returncode == 0, flagged.stderr
    assert json.loads(flagged.stdout)["pairs"] == report["pairs"]


def test_nstvid_eval_help_and_version():
    evaluate = nstvid_exe("nstvid-eval")
    listing = subprocess.run([evaluate, "-h"], capture_output=True, text=True)
    assert listing.returncode == 0 and "temporal  Flicker (E_warp) of stylised videos against the input's own." \
        in listing.stdout, listing.stdout
    assert subprocess.run([evaluate, "temporal", "-h"], capture_output=True, text=True).returncode == 0
    version = subprocess.run([evaluate, "--version"], capture_output=True, text=True)
    assert version.stdout == f"nstvid-eval {nstvid.__version__}\n"


def test_cron_tells_out_of_time_from_finished_and_a_rerun_keeps_the_nights_page(tmp_path, run_nstvid):
    """--max-runtime that stops with files to do exits 75 (README's table), not 0; the run that
    finishes them exits 0 and writes the page; a rerun with nothing to do exits 0 and leaves that
    page as it was (it says so), instead of a page of "done 0 ... 0.0 s"."""
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(photos / name), cv2.resize(cv2.imread(str(CONTENT)), (48, 32)))
    page = tmp_path / "report.html"
    args = [photos, "--style", STYLE, *TINY, "--size", "32", "-o", tmp_path / "out", "--report", page,
            "--log-format", "json"]
    night = run_nstvid(*args, "--max-runtime", "0")  # out of time before the first file
    assert night.returncode == 75, night.stdout + night.stderr
    lines = log(night.stdout)  # every line JSON, with its level and an ISO 8601 time
    assert len(lines) == len(night.stdout.splitlines()) and {line["level"] for line in lines} <= {"info", "warning"}
    assert all(datetime.fromisoformat(line["time"]).utcoffset() is not None for line in lines), lines
    assert said(night.stdout, "job.max_runtime") and "file.done" not in codes(night.stdout)
    assert "Stopped at --max-runtime" in page.read_text() and "pending 2" in page.read_text()
    rest = run_nstvid(*args, "--max-runtime", "6h")
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert codes(rest.stdout).count("file.done") == 2 and "done 2 · skipped 0" in page.read_text()
    written, stamp = page.read_bytes(), page.stat().st_mtime_ns
    again = run_nstvid(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert said(again.stdout, "folder.nothing_to_do") and said(again.stdout, "report.kept")
    assert page.read_bytes() == written and page.stat().st_mtime_ns == stamp


def test_json_log_carries_fatal_errors_with_a_code(tmp_path, run_nstvid):
    """--log-format json (here from a config file) makes a refusal one JSON line on stdout, as the
    log's other lines, with level error, a stable code and the exit code; stderr stays empty. A line
    typer refuses (an unknown option) is one too, with the flag."""
    config = tmp_path / "job.toml"
    config.write_text('log_format = "json"\n')
    missing = tmp_path / "nope.png"
    r = run_nstvid(missing, "--style", STYLE, "--config", config)
    assert r.returncode == 2 and r.stderr == "", r.stdout + r.stderr
    (line,) = log(r.stdout)
    assert (line["level"], line["code"], line["exit_code"], line["path"]) == ("error", "error.input", 2, str(missing))
    assert line["message"].startswith(f"error: {missing}: ")
    assert datetime.fromisoformat(line["time"]).utcoffset() is not None
    r = run_nstvid(CONTENT, "--style", STYLE, "--bogus", "--log-format=json")
    assert r.returncode == 2 and r.stderr == "", r.stdout + r.stderr
    (line,) = log(r.stdout)
    assert (line["level"], line["code"], line["message"]) == ("error", "error.usage", "error: No such option: --bogus")


def test_help_shows_values_as_command_lines_do():
    """No type leaks from typer into the help: a switch shows no value, an argument its NAME, an
    option with choices lists them, the others a word (FILE, INTEGER, DURATION)."""
    env = {**os.environ, "COLUMNS": "100"}
    pages = {" ".join(cmd): subprocess.run([nstvid_exe(cmd[0]), *cmd[1:], "--help"], capture_output=True, text=True,
                                          env=env).stdout for cmd in (["nstvid"], ["nstvid-eval"],
                                                                      ["nstvid-eval", "temporal"])}
    for name, text in pages.items():
        assert text and not [leak for leak in ("<bool>", "list[", "Path]", "{input}", "<path>", "<str>")
                             if leak in text], (name, text)
    main = pages["nstvid"]
    assert "Usage: nstvid [OPTIONS] INPUT " in main and "Usage: nstvid-eval temporal [OPTIONS] INPUT OUTPUTS..." \
        in pages["nstvid-eval temporal"]
    rows = {line.split()[1]: line for line in main.splitlines() if line.startswith("\u2502 --")}
    assert rows["--overwrite"].split()[2] == "Replace" and rows["--style"].split()[3] == "FILE", rows
    assert "[auto|plain|json]" in rows["--log-format"] and "DURATION" in rows["--max-runtime"], rows
