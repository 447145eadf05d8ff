"""One clip on one device through the real command, this design against the one before issue 23,
in one run: the same output (frame count, E_warp) at the same speed (seconds per frame). Each
design runs twice, in turn (A B A B), so the table shows the run-to-run spread next to the gap.
Writes docs/single_device.md.

    .venv/bin/python bench/single_device.py --old-nstvid ../old/nstvid.sh   # ~6 min on 2 cores
    # the old design: git worktree add ../old 38664c1^2 (issue 24's last commit); run it with this
    # venv: mkdir -p /tmp/oldpkg && ln -s "$PWD/../old" /tmp/oldpkg/nstvid, and ../old/nstvid.sh:
    #   PYTHONPATH=/tmp/oldpkg exec "$VENV/bin/python" -m nstvid "$@"
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SAMPLES, STYLE
from nstvid.pipeline.media.video import read_frames
from ray_end_to_end import e_warp_of_part

DOC = ROOT / "docs" / "single_device.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-nstvid", type=Path, required=True,
                        help="the nstvid command of a checkout before issue 23")
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    designs = {"this design": Path(sys.executable).with_name("nstvid"), "before issue 23": args.old_nstvid}
    clip = SAMPLES / "realshort.mp4"
    look = ["--style", str(STYLE), "--size", str(args.size), "--preset", "fast", "--frame-iterations", "15",
            "--duration", f"{args.frames}f", "--log-format", "json", "--overwrite"]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "NSTVID_CACHE_DIR": str(Path(folder) / "cache")}
        for repeat in range(args.repeats):
            for design, exe in designs.items():
                out = Path(folder) / f"{design.replace(' ', '_')}_{repeat}.mp4"
                t0 = time.perf_counter()
                r = subprocess.run([str(exe), str(clip), *look, "-o", str(out)], capture_output=True, text=True,
                                   env=env)
                wall = time.perf_counter() - t0
                if r.returncode != 0:
                    raise SystemExit(f"{design}: exit {r.returncode}\n{r.stderr[-2000:]}")
                events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
                per_frame = [e["seconds"] for e in events if "frame" in e and "seconds" in e]
                frames = sum(1 for _ in read_frames(out))
                # The warm frames' own time (the first frame is the full optimisation).
                rows.append((design, repeat + 1, wall, frames, statistics.median(per_frame[1:]),
                             e_warp_of_part(clip, out, args.frames)))
                print(rows[-1], flush=True)
    lines = ["# One clip on one device, end to end", "",
             "`.venv/bin/python bench/single_device.py --old-nstvid ...` "
             f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
             f"one run, each command in turn, A B A B): the first {args.frames} frames of "
             f"sample_media/realshort.mp4 at {args.size} px, `--preset fast --frame-iterations 15`, in this process "
             "(no --devices, no Ray). Seconds per frame: the median of the warm frames' own times (the job's "
             "FrameDone events); wall: the whole command, start-up and the estimate's trial included.", "",
             "| design | run | wall (s) | frames | s/frame (warm, median) | E_warp |", "|---|---|---|---|---|---|"]
    for design, run, wall, frames, seconds, e_warp in rows:
        lines.append(f"| {design} | {run} | {wall:.1f} | {frames} | {seconds:.3f} | {e_warp:.4e} |")
    mean = {d: [statistics.mean(r[i] for r in rows if r[0] == d) for i in (2, 4, 5)] for d in designs}
    (new_wall, new_s, new_e), (old_wall, old_s, old_e) = mean["this design"], mean["before issue 23"]
    lines += ["", f"Means, this design over the one before: wall {new_wall / old_wall:.2f}x, seconds per warm frame "
              f"{new_s / old_s:.2f}x, E_warp {new_e / old_e:.3f}x (issue 23's bound: within 1.05x). GPU figures: "
              "unmeasured (no GPU lent).", ""]
    DOC.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
