"""The real `nstvid` command on the GPU: frames/s and flicker at 512x288 and 1280x720, batch 1
against the automatic batch, on the first frames of the sample clip (balanced preset).

    python bench/gpu_cli.py --out docs/gpu_cli.md            # on a CUDA machine
    python bench/gpu_cli.py --smoke --out /tmp/gpu_cli.md     # tiny CPU run that checks the script

Each run appends its row to --out as soon as it ends (bench/gpu.sh gives the whole a time limit).
frames/s counts the warm-started frames only (the first frame is a full coarse-to-fine
optimisation); E_warp is measured with the input's flow, as `nstvid-eval temporal` does.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import CLIP, ROOT, STYLE
from nstvid.pipeline.api import temporal_error
from nstvid.pipeline.media.video import run_ffmpeg


def run(source: Path, size: int, batch: int, device: str, timeout: float, extra: list[str]) -> str:
    out = Path(f"/tmp/nstvid_gpu_{size}_{batch}.mp4")
    cmd = [sys.executable, "-m", "nstvid", str(source), "--style", str(STYLE), "-o", str(out), "--size", str(size),
           "--batch", str(batch), "--device", device, "--log-format", "json", "--overwrite", *extra]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"| {size} | {batch or 'auto'} | timed out after {timeout:.0f} s | | | |"
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        return f"| {size} | {batch or 'auto'} | failed: {proc.stderr.strip()[-120:]} | | | |"
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    frames = [line for line in lines if "frame" in line]
    later = sum(line["seconds"] for line in frames[1:])
    chosen = next((line["message"] for line in lines if line["message"].startswith("batch ")), "")
    e_warp = temporal_error(source, out)
    return (f"| {size} | {batch or 'auto'}{f' ({chosen})' if chosen else ''} | {wall:.1f} | "
            f"{(len(frames) - 1) / later:.2f} | {e_warp['e_warp']:.5f} | {e_warp['input_e_warp']:.5f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gpu_cli.md")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    args = parser.parse_args()
    device, sizes, timeout, extra = "cuda", (512, 1280), 60.0, []
    if args.smoke:
        device, sizes, timeout = "cpu", (64,), 300.0
        extra = ["--scales", "1", "--iterations", "5", "--frame-iterations", "3"]
    source = Path(f"/tmp/nstvid_gpu_source_{args.frames}.mp4")
    run_ffmpeg(["-y", "-v", "error", "-i", str(CLIP), "-frames:v", str(args.frames), "-c:v", "libx264", "-crf",
                "12", "-c:a", "aac", "-shortest", str(source)])
    header = ["## The real command", "",
              f"`python bench/gpu_cli.py {' '.join(sys.argv[1:])}`: the first {args.frames} frames of "
              f"sample_media/pan.mp4 (320x180, upscaled to --size), balanced preset, --device {device}.", "",
              "| --size | --batch | wall s | frames/s (warm-started frames) | E_warp | input's own E_warp |",
              "|---|---|---|---|---|---|"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write("\n".join(header) + "\n")
    print("\n".join(header), flush=True)
    for size in sizes:
        for batch in (1, 0):
            row = run(source, size, batch, device, timeout, extra)
            with open(args.out, "a") as f:
                f.write(row + "\n")
            print(row, flush=True)


if __name__ == "__main__":
    main()
