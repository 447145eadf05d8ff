"""What a warm-started video frame costs, and cheaper schedules at equal quality (CPU).

    .venv/bin/python bench/frame_cost.py        # writes docs/frame_cost.md and docs/frame_cost_strip.jpg

Every candidate (a number of iterations per later frame) runs the real chain (video/stream.py
stylise_frames, batch 1) over the same later frames of pan, orbit and Sintel alley_2, from one
shared stylised first frame per clip, in one run. Per candidate against the first (60 iterations,
the balanced schedule before 0.3.0):
seconds per later frame (flow planning and optimisation), the mean loss without the temporal term
(content + style + TV, fp32), E_warp (Lai et al., over the whole chain from the shared first frame)
and the convolution work per later frame in GFLOP, computed from VGG19's layer shapes up to
relu5_1 with the iterations each frame actually ran.

docs/frame_cost.md's first table also holds candidates measured at commit 0b5ad30 and removed after
they lost (half-size iterations, carried L-BFGS pairs, a stop rule): that commit reruns them.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from common import ROOT, STYLE, chain_frames, clip_frames, conv_flops, image_losses, private_cache
from nstvid.pipeline.flow import warping_error
from nstvid.pipeline.settings import Settings

DECISION = "## What was chosen, and why"


def frame_gflop(iterations: int, h: int, w: int) -> float:
    """Convolution work of one warm frame: its iterations at 2x the forward pass, plus the content
    target's forward pass."""
    return (2 * iterations + 1) * conv_flops(h, w) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=4, help="per clip, the first included (Sintel has 4)")
    parser.add_argument("--first-iterations", type=int, default=200,
                        help="the shared first frame's iterations per scale (balanced: 200)")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--frame-iterations", default="60,30,20", help="the candidates; the first is the reference")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    private_cache()
    base = Settings(styles=(str(STYLE),), size=args.size, precision=args.precision)  # balanced
    chosen = [int(n) for n in args.frame_iterations.split(",")]
    clips = {name: clip_frames(name, args.size, args.frames) for name in ("pan", "orbit", "sintel")}
    command = f"`.venv/bin/python bench/frame_cost.py {' '.join(sys.argv[1:])}`"
    md = ["# What a later video frame costs: schedules at equal quality", "",
          f"## The candidates ({args.frames - 1} later frames per clip)", "",
          f"{command} (CPU, {torch.get_num_threads()} threads, {args.precision}, torch {torch.__version__}); "
          f"balanced preset otherwise, starry_night.jpg, {args.size} px long side, frames 2-{args.frames} of "
          "pan.mp4, orbit.mp4 and Sintel alley_2, each clip from one shared first frame "
          f"({args.first_iterations} iterations per scale). Per candidate, over all later frames of the "
          "three clips: seconds per later frame, convolution GFLOP per later frame (from the layer "
          "shapes and the iterations run), mean loss without the temporal term and mean E_warp, both "
          f"against {chosen[0]} iterations' in the same run. Issue 13's bar: loss within +2%, E_warp at "
          "most 1.0x, at most 1/3 of the GFLOP and time.", "",
          "| frame iterations | s/frame | vs first | GFLOP/frame | vs first | loss vs first | E_warp vs first | "
          "pan E_warp | orbit E_warp | Sintel E_warp |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(md), flush=True)
    firsts = {name: chain_frames(dataclasses.replace(base, iterations=args.first_iterations), frames[:1])[0][0]
              for name, frames in clips.items()}
    rows, strips = [], []
    for iterations in chosen:
        settings = dataclasses.replace(base, frame_iterations=iterations)
        secs, gflop, losses, e_warp = [], [], [], {}
        for name, frames in clips.items():
            outs, sec, results = chain_frames(settings, frames, {0: firsts[name]})
            h, w = frames[0].shape[:2]
            secs += sec[1:]
            gflop += [frame_gflop(r.iterations, h, w) for r in results[1:]]
            losses += image_losses(settings, outs[1:], frames[1:])[0]
            e_warp[name] = float(np.mean(warping_error(iter(outs), iter(frames))))
            if name == "pan":
                strips.append(outs[-1])
        rows.append((iterations, float(np.mean(secs)), float(np.mean(gflop)), float(np.mean(losses)), e_warp))
        first = rows[0]
        s_, g_, l_, e_ = rows[-1][1:]
        e_mean, first_e = np.mean(list(e_.values())), np.mean(list(first[4].values()))
        md.append(f"| {iterations} | {s_:.1f} | {s_ / first[1]:.2f}x | {g_:.0f} | {g_ / first[2]:.2f}x | "
                  f"{100 * (l_ / first[3] - 1):+.1f}% | {e_mean / first_e:.2f}x | "
                  + " | ".join(f"{e_[n]:.5f}" for n in clips) + " |")
        print(md[-1], flush=True)
    floors = {n: float(np.mean(warping_error(iter(f), iter(f)))) for n, f in clips.items()}
    md += ["", "The inputs' own E_warp (the floor set by flow errors): "
           + ", ".join(f"{n} {v:.5f}" for n, v in floors.items()) + ".", "",
           f"Strip (frame_cost_strip.jpg): pan frame {args.frames}, left to right: "
           + ", ".join(f"{n} iterations" for n in chosen) + "."]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "frame_cost.md"
    kept = path.read_text().split(DECISION, 1) if path.exists() else []  # the written decision stays
    path.write_text("\n".join(md) + "\n" + (f"\n{DECISION}{kept[1]}" if len(kept) == 2 else ""))
    cv2.imwrite(str(args.out / "frame_cost_strip.jpg"), cv2.cvtColor(np.concatenate(strips, axis=1), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 88])


if __name__ == "__main__":
    main()
