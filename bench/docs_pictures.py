"""Remake the README's pictures, each by today's code at today's defaults unless its caption says:

- docs/report_page.png: the report page of a sample job, shot in headless Chromium;
- docs/video_strip.jpg and docs/realshort_starry.gif: the real hand-held clip in motion (one run);
- docs/gallery.jpg: the photo gallery (bench/gallery.py --size 256).

    .venv/bin/python bench/docs_pictures.py [--skip-report] [--skip-video] [--skip-gallery] [--measure]
                                            [--work DIR]
    # or: make docs-pictures (all of them)

The sample job: a folder of the sample photos (chelsea, coffee, astronaut: two aspects), a text
file named .jpg (a failure), and realshort.mp4's first 12 frames, stylised with starry_night at
--preset fast --size 128 with --report report.html, then the page shot in headless Chromium
(bench/browser.py) at 1280x1000. --measure also runs it without --report (after a first run that
fills the style cache) and prints both times; the page writing's own share is printed either way
(the job's log says it too).

The clip: the real `nstvid` command on sample_media/realshort.mp4's first 24 frames at the balanced
preset (the defaults) with a working size of 192 px (VIDEO below), written losslessly (FFV1 in
.mkv) at the source's size. The strip is frames 1, 2, 12 and 24, input above, output below; the
GIF is nstvid's own GIF step (write_gif: one palette for the clip) over that output, which is what
`-o x.gif --output-size 320` runs after stylising: one stylisation makes both. Each frame's seconds
are printed from the job's log (wall time: on a shared machine mostly waiting), and the job's CPU
seconds. On a slow or shared CPU the clip's job may be stopped (Ctrl-C, SIGTERM) and resumed: with
--work DIR its folder is kept, and a rerun with the same DIR goes on from the last finished frame.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from browser import chromium, screenshot
from common import ROOT, cpu_seconds
from nstvid.pipeline.media.video import read_frames, run_ffmpeg, write_gif

SAMPLES = ROOT / "sample_media"
DOCS = ROOT / "docs"
JOB = ["--style", "sample_media/starry_night.jpg", "--preset", "fast", "--size", "128", "--frame-iterations", "15",
       "--log-format", "plain"]
# The clip's run, in the folder where sample_media is (the caption quotes it): a working size of
# 192 px keeps it near 20 s of CPU a later frame; the rest are the defaults (balanced).
VIDEO = ["sample_media/realshort.mp4", "--style", "sample_media/starry_night.jpg", "--size", "192",
         "--duration", "24f", "-o", "realshort_starry.mkv", "--codec", "ffv1"]
STRIP_FRAMES = (0, 1, 11, 23)  # frames 1, 2, 12 and 24: the start, the first warm-started frame, the middle, the last
GAP = 4  # white pixels between the strip's frames


def nstvid(base: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed nstvid (beside this Python), run in folder base."""
    return subprocess.run([str(Path(sys.executable).with_name("nstvid")), *args], capture_output=True, text=True,
                          cwd=base)


# ---- the report page ----

def sample_tree(folder: Path) -> Path:
    """The sample job's input folder."""
    (folder / "photos").mkdir(parents=True)
    for name in ("chelsea.png", "coffee.jpg", "astronaut.jpg"):
        shutil.copy(SAMPLES / name, folder / "photos" / name)
    (folder / "photos" / "receipt.jpg").write_text("not a picture: a text file named .jpg\n")
    (folder / "clips").mkdir()
    clip = folder / "clips" / "realshort.mp4"
    run_ffmpeg(["-v", "error", "-i", str(SAMPLES / "realshort.mp4"), "-frames:v", "12", "-c:v", "libx264",
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip)], path=clip)
    return folder


def run_job(base: Path, tree: Path, out: Path, *extra: str) -> tuple[float, float, str]:
    """Run the sample job in folder base, where the relative paths tree and out are; returns
    (wall seconds, CPU seconds, log)."""
    t0, cpu0 = time.perf_counter(), cpu_seconds()[1]
    r = nstvid(base, str(tree), "-o", str(out), *JOB, *extra)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds()[1] - cpu0
    if r.returncode not in (0, 1):  # 1: the sample's bad file
        raise SystemExit(f"nstvid failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    return seconds, cpu, r.stdout


def report_page(base: Path, measure: bool, out: Path) -> None:
    tree = sample_tree(base / "sample_job")
    page = base / "report.html"
    if measure:  # the style targets computed once first: both timed runs find them cached
        run_job(base, tree, base / "priming_run")
    # Relative paths, so that the page's command line reads as the README's.
    seconds, cpu, log = run_job(base, Path("sample_job"), Path("stylised"), "--report", "report.html")
    share = re.search(r"report: \S+ \(([\d.]+) s of the job's ([\d.]+) s", log)
    print(f"job with --report report.html: {seconds:.1f} s wall, {cpu:.0f} CPU s" + (
        f"; writing the page: {share[1]} s of the job's {share[2]} s ({float(share[1]) / float(share[2]):.1%})"
        if share else ""), flush=True)
    if measure:
        bare, _, _ = run_job(base, tree, base / "stylised_without_report")
        print(f"job without a report: {bare:.1f} s wall (with: {seconds:.1f} s, ratio {seconds / bare:.3f})")
    errors = screenshot(chromium(), page, out, 1280, 1000)
    if errors:
        raise SystemExit(f"the page logged console errors: {errors}")
    print(f"wrote {out}", flush=True)


# ---- the clip in motion ----

def frame_seconds(log: str) -> dict[int, float]:
    """{frame number: seconds} of the frames finished in this run, from the job's JSON log lines
    (code "frame"); a resumed run has only those after where it resumed."""
    lines = (json.loads(line) for line in log.splitlines() if line.startswith("{"))
    return {line["frame"]: line["seconds"] for line in lines if line.get("code") == "frame"}


def strip(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> np.ndarray:
    """RGB frames side by side, inputs in the top row, outputs in the bottom, GAP white between."""
    def row(frames):
        parts = []
        for frame in frames:
            parts += [frame, np.full((frame.shape[0], GAP, 3), 255, np.uint8)]
        return np.hstack(parts[:-1])
    top, bottom = row(inputs), row(outputs)
    return np.vstack([top, np.full((GAP, top.shape[1], 3), 255, np.uint8), bottom])


def clip_pictures(base: Path, strip_out: Path, gif_out: Path) -> None:
    t0, cpu0 = time.perf_counter(), cpu_seconds()[1]
    r = nstvid(base, *VIDEO, "--log-format", "json")
    cpu = cpu_seconds()[1] - cpu0  # the job's CPU seconds, its threads and ffmpeg's together
    if r.returncode != 0:
        raise SystemExit(f"nstvid failed (exit {r.returncode}):\n{r.stdout[-4000:]}{r.stderr[-4000:]}")
    seconds = frame_seconds(r.stdout)
    later = [v for k, v in seconds.items() if k > 1]
    print(f"nstvid {' '.join(VIDEO)}: {time.perf_counter() - t0:.0f} s wall, {cpu:.0f} CPU s, {len(seconds)} frames "
          "in this run" + (f"; frame 1 {seconds[1]:.0f} s" if 1 in seconds else "") + (
              f"; later frames median {statistics.median(later):.1f} s (min {min(later):.1f}, max {max(later):.1f})"
              if later else ""), flush=True)
    styled = base / VIDEO[VIDEO.index("-o") + 1]
    outputs = list(read_frames(styled))
    inputs = list(read_frames(base / VIDEO[0]))[:len(outputs)]
    if inputs[0].shape != outputs[0].shape:
        raise SystemExit(f"the output is {outputs[0].shape[1::-1]}, the input {inputs[0].shape[1::-1]}: "
                         "the strip pairs frames of one size")
    sheet = strip([inputs[i] for i in STRIP_FRAMES], [outputs[i] for i in STRIP_FRAMES])
    cv2.imwrite(str(strip_out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {strip_out} ({strip_out.stat().st_size / 1024:.0f} KB)")
    write_gif(styled, gif_out)
    print(f"wrote {gif_out} ({gif_out.stat().st_size / 1024:.0f} KB)", flush=True)


def folder(prefix: str, keep: Path | None = None) -> Path:
    """The folder a part's jobs run in, with its own style cache and sample_media beside them (the
    logs and the page show the README's relative paths): keep, made if missing, or a new one."""
    base = Path(tempfile.mkdtemp(prefix=prefix)) if keep is None else keep.resolve()
    base.mkdir(parents=True, exist_ok=True)
    os.environ["NSTVID_CACHE_DIR"] = str(base / "cache")
    if not (base / "sample_media").exists():
        (base / "sample_media").symlink_to(SAMPLES)
    return base


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-report", action="store_true", help="leave docs/report_page.png")
    parser.add_argument("--skip-video", action="store_true", help="leave docs/video_strip.jpg and the GIF")
    parser.add_argument("--skip-gallery", action="store_true", help="leave docs/gallery.jpg")
    parser.add_argument("--measure", action="store_true", help="also time the sample job without --report")
    parser.add_argument("--out", type=Path, default=DOCS / "report_page.png")
    parser.add_argument("--work", type=Path, help="the clip's folder, kept: a rerun after a stop (Ctrl-C, SIGTERM, "
                        "kill -9) resumes its job where it stopped (a temporary folder without it)")
    args = parser.parse_args()
    if not args.skip_report:
        base = folder("nstvid-docs-report-")
        report_page(base, args.measure, args.out)
        shutil.rmtree(base, ignore_errors=True)
    if not args.skip_video:
        base = folder("nstvid-docs-clip-", args.work)
        clip_pictures(base, DOCS / "video_strip.jpg", DOCS / "realshort_starry.gif")
        if args.work is None:
            shutil.rmtree(base, ignore_errors=True)
    if not args.skip_gallery:
        subprocess.run([sys.executable, str(ROOT / "bench" / "gallery.py"), "--size", "256"], check=True)


if __name__ == "__main__":
    main()
