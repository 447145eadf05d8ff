"""The CPU timings README quotes, measured at today's defaults in one run (docs/benchmarks.md,
"README's CPU figures", holds the last run's output and the machine):

    nice -n 19 .venv/bin/python bench/readme_timings.py [--frames 3] [--demo]

- a photo: `nstvid sample_media/coffee.jpg --style sample_media/starry_night.jpg` (512x341, the
  balanced preset: 512 px working size, 3 scales of up to 200 iterations, the guided detail step);
- a clip: `nstvid sample_media/realshort.mp4 --style sample_media/starry_night.jpg --duration 3f`
  (512x384, balanced: the first frame's full optimisation, then 30 iterations a later frame);
  --first-iterations N adds `--iterations N`, which shortens only the first frame (the photo
  measures a full optimisation), not the later frames' 30 iterations;
- with --demo, `make demo`'s three commands, as the Makefile runs them.

Each job runs through nstvid.stylise in this process (what the command runs), so that besides
wall time it counts the process's CPU seconds (all threads: torch's, decoding and flow): on a
machine shared with other work wall time grows with the load, and CPU seconds are the better
figure to compare, though contention (caches, threads that wait on each other) raises them too. Wall
time per frame is the job's own FrameDone.seconds; CPU per frame is taken between those events.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import nstvid
from common import ROOT, STYLE, cpu_seconds, private_cache

SAMPLES = ROOT / "sample_media"
# make demo's commands (Makefile), output into a scratch folder
DEMO = [["sample_media/chelsea.png", "--style", "sample_media/starry_night.jpg", "-o", "{out}/chelsea.png",
         "--preset", "fast", "--size", "160", "--overwrite"],
        ["sample_media/realshort.mp4", "--style", "sample_media/starry_night.jpg", "-o", "{out}/realshort.mp4",
         "--preset", "fast", "--size", "128", "--frame-iterations", "15", "--overwrite"]]


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (f"{model}, {os.cpu_count()} cores ({isa}), torch {torch.__version__} with {torch.get_num_threads()} "
            f"threads, load average at the start {os.getloadavg()[0]:.1f}")


def photo(out: Path) -> None:
    cpu0, t0 = cpu_seconds()[0], time.perf_counter()
    outcome = nstvid.stylise(SAMPLES / "coffee.jpg", style=STYLE, output=out / "coffee.png")
    wall, cpu = time.perf_counter() - t0, cpu_seconds()[0] - cpu0
    print(f"| photo 512x341 (coffee.jpg), balanced | `nstvid sample_media/coffee.jpg --style "
          f"sample_media/starry_night.jpg` | {wall:.0f} s wall, {cpu:.0f} CPU s "
          f"({outcome.iterations} iterations at 512 px) |", flush=True)


def clip(out: Path, frames: int, first_iterations: int | None) -> None:
    walls, cpus, mark = [], [], [cpu_seconds()[0]]

    def on_event(event) -> None:
        if isinstance(event, nstvid.FrameDone):
            walls.append(event.seconds)
            now = cpu_seconds()[0]
            cpus.append(now - mark[0])
            mark[0] = now

    t0 = time.perf_counter()
    first = {"iterations": first_iterations} if first_iterations is not None else {}
    nstvid.stylise(SAMPLES / "realshort.mp4", style=STYLE, output=out / "realshort.mp4", duration=f"{frames}f",
                   progress=on_event, **first)
    wall = time.perf_counter() - t0
    later = f"{statistics.mean(walls[1:]):.0f} s wall, {statistics.mean(cpus[1:]):.0f} CPU s" if frames > 1 else "-"
    print(f"| clip 512x384 (realshort.mp4), balanced, {frames} frames | `nstvid sample_media/realshort.mp4 --style "
          f"sample_media/starry_night.jpg --duration {frames}f"
          f"{f' --iterations {first_iterations}' if first else ''}` | frame 1: {walls[0]:.0f} s wall, {cpus[0]:.0f} "
          f"CPU s (with the job's start: style targets, the estimate's trial); "
          f"each later frame: {later} (mean of {frames - 1}); whole job {wall:.0f} s wall |", flush=True)


def demo(out: Path) -> None:
    exe = Path(sys.executable).with_name("nstvid")
    children0, t0 = cpu_seconds()[1], time.perf_counter()
    for args in DEMO:
        subprocess.run([str(exe), *(a.format(out=out) for a in args)], cwd=ROOT, check=True, capture_output=True)
    subprocess.run([str(Path(sys.executable).with_name("nstvid-eval")), "temporal", "sample_media/realshort.mp4",
                    str(out / "realshort.mp4")], cwd=ROOT, check=True, capture_output=True)
    print(f"| make demo (after setup) | its three commands (Makefile) | {time.perf_counter() - t0:.0f} s wall, "
          f"{cpu_seconds()[1] - children0:.0f} CPU s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=3, help="of the clip: the first and frames - 1 later ones")
    parser.add_argument("--first-iterations", type=int, help="the clip's --iterations: fewer make its first "
                        "frame cheaper and leave the later frames' work (--frame-iterations) as it is")
    parser.add_argument("--demo", action="store_true", help="also time make demo's commands")
    parser.add_argument("--skip-photo", action="store_true")
    parser.add_argument("--skip-clip", action="store_true")
    args = parser.parse_args()
    private_cache("nstvid-timings-")  # style targets computed in the run, as a first run computes them
    print(f"{machine()}; {time.strftime('%Y-%m-%d %H:%M %Z')}\n")
    print("| what | command | measured |\n|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="nstvid-timings-") as folder:
        if not args.skip_photo:
            photo(Path(folder))
        if not args.skip_clip:
            clip(Path(folder), args.frames, args.first_iterations)
        if args.demo:
            demo(Path(folder))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
