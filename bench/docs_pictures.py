"""Remake the README's pictures: the report page of a sample job (docs/report_page.png) and the
gallery (docs/gallery.png, bench/gallery.py --size 256).

    .venv/bin/python bench/docs_pictures.py [--skip-gallery] [--measure]     # or: make docs-pictures

The sample job: a folder of the sample photos (chelsea, coffee, astronaut: two aspects), a text
file named .jpg (a failure), and realshort.mp4's first 12 frames, stylised with starry_night at
--preset fast --size 128 with --report report.html, then the page shot in headless Chromium
(bench/browser.py) at 1280x1000. --measure also runs it without --report (after a first run that
fills the style cache) and prints both times; the page writing's own share is printed either way
(the job's log says it too).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from browser import chromium, screenshot
from common import ROOT
from nstvid.pipeline.media.video import run_ffmpeg

SAMPLES = ROOT / "sample_media"
JOB = ["--style", "sample_media/starry_night.jpg", "--preset", "fast", "--size", "128", "--frame-iterations", "15",
       "--log-format", "plain"]


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


def run_job(base: Path, tree: Path, out: Path, *extra: str) -> tuple[float, str]:
    """Run the sample job with the installed nstvid (beside this Python) in folder base, where the
    relative paths tree and out are; returns (seconds, log)."""
    exe = Path(sys.executable).with_name("nstvid")
    t0 = time.perf_counter()
    r = subprocess.run([str(exe), str(tree), "-o", str(out), *JOB, *extra], capture_output=True, text=True,
                       cwd=base)
    seconds = time.perf_counter() - t0
    if r.returncode not in (0, 1):  # 1: the sample's bad file
        raise SystemExit(f"nstvid failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    return seconds, r.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-gallery", action="store_true", help="only the report page's screenshot")
    parser.add_argument("--measure", action="store_true", help="also time the job without --report")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report_page.png")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="nstvid-docs-"))
    os.environ["NSTVID_CACHE_DIR"] = str(base / "cache")
    tree = sample_tree(base / "sample_job")
    (base / "sample_media").symlink_to(SAMPLES)  # the job runs in base: the page shows the README's paths
    page = base / "report.html"
    if args.measure:  # the style targets computed once first: both timed runs find them cached
        run_job(base, tree, base / "priming_run")
    # Relative paths, so that the page's command line reads as the README's.
    seconds, log = run_job(base, Path("sample_job"), Path("stylised"), "--report", "report.html")
    share = re.search(r"report: \S+ \(([\d.]+) s of the job's ([\d.]+) s", log)
    print(f"job with --report report.html: {seconds:.1f} s wall" + (
        f"; writing the page: {share[1]} s of the job's {share[2]} s ({float(share[1]) / float(share[2]):.1%})"
        if share else ""))
    if args.measure:
        bare, _ = run_job(base, tree, base / "stylised_without_report")
        print(f"job without a report: {bare:.1f} s wall (with: {seconds:.1f} s, ratio {seconds / bare:.3f})")
    errors = screenshot(chromium(), page, args.out, 1280, 1000)
    if errors:
        raise SystemExit(f"the page logged console errors: {errors}")
    print(f"wrote {args.out}")
    if not args.skip_gallery:
        subprocess.run([sys.executable, str(ROOT / "bench" / "gallery.py"), "--size", "256"], check=True)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
