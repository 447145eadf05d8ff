"""How many optimiser iterations a warm-started video frame needs (CPU).

    .venv/bin/python bench/iterations.py                  # writes docs/iterations.md, docs/iterations.png

The GPU target (10 frames/s at 1280x720) is a question of iterations per frame as much as of
kernels: at the measured 15 ms per 720p iteration, 30 iterations cost 0.45 s. This sweeps
--frame-iterations over the same frames, each run starting from the same stylised first frame, and
reports per setting: the clip's E_warp, the mean loss of frames 2..N without the temporal term
(content + style + TV, fp32), the iterations actually run (the preset's early stop applies) and
seconds per frame, with ratios to the balanced preset's frame iterations (Settings' default).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from common import ROOT, STYLE, chain_frames, chain_from, clip_frames, image_losses, private_cache
from nstvid.pipeline.flow import warping_error
from nstvid.pipeline.settings import Settings

BALANCED = Settings().frame_iterations  # the balanced preset's (the defaults themselves)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--sweep", default="10,20,30,60,120", help="frame iterations to try")
    parser.add_argument("--clips", default="pan,orbit,sintel")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--first-iterations", type=int, default=0,
                        help="iterations for the first frame (0: the preset's); large sizes are slow on a CPU")
    parser.add_argument("--temporal-weight", type=float, default=0, help="0: the preset's")
    parser.add_argument("--suffix", default="", help="iterations<suffix>.md/.png, e.g. _gpu")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    private_cache()
    sweep = [int(n) for n in args.sweep.split(",")]
    base = Settings(styles=(str(STYLE),), size=args.size)  # balanced preset
    if args.temporal_weight:
        base = dataclasses.replace(base, temporal_weight=args.temporal_weight)
    machine = (torch.cuda.get_device_name() if torch.cuda.is_available()
               else f"CPU, {torch.get_num_threads()} threads")
    command = f"`.venv/bin/python bench/iterations.py {' '.join(sys.argv[1:])}`"
    md = ["# Iterations per warm-started video frame", "",
          f"{command} ({machine}, torch {torch.__version__}, "
          f"precision {base.precision}: bf16 where it is faster); style starry_night.jpg, "
          f"{args.size} px long side, balanced preset (early stop at tolerance {base.tolerance:g}) "
          f"except --frame-iterations{' and the first frame' if args.first_iterations else ''}"
          f"{'' if not args.temporal_weight else f', temporal weight {args.temporal_weight:g}'}. "
          f"Every run starts from the same stylised first frame; E_warp and loss are over frames 2..N "
          f"(loss = content + style + TV, no temporal term, fp32). "
          f"Ratios are to {BALANCED} iterations in the same run. Plot: iterations{args.suffix}.png.", "",
          f"| clip | frames | frame iterations | iterations run (mean) | E_warp | vs {BALANCED} | loss | "
          f"vs {BALANCED} | last frame's loss vs {BALANCED} | s / frame | input's own E_warp |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(md), flush=True)
    curves, lasts = {}, {}
    for name in args.clips.split(","):
        frames = clip_frames(name, args.size, args.frames)
        first_settings = dataclasses.replace(base, iterations=args.first_iterations or base.iterations)
        first = chain_frames(first_settings, frames[:1])[0][0]
        floor = float(np.mean(warping_error(iter(frames), iter(frames))))
        rows = {}
        for n in sweep:
            settings = dataclasses.replace(base, frame_iterations=n)
            outs, secs, counts = chain_from(settings, frames, first)
            e_warp = float(np.mean(warping_error(iter(outs), iter(frames))))
            losses = image_losses(settings, outs[1:], frames[1:])[0]
            rows[n] = (float(np.mean(counts)), e_warp, float(np.mean(losses)), float(np.mean(secs)), losses[-1])
            print(f"  {name} {n}: {rows[n]}", flush=True)
            lasts[(name, n)] = outs[-1]
        ref = rows.get(BALANCED, rows[sweep[-1]])
        for n, (ran, e_warp, loss, sec, last) in rows.items():
            md.append(f"| {name} | {len(frames)} | {n} | {ran:.1f} | {e_warp:.5f} | {e_warp / ref[1]:.2f}x | "
                      f"{loss:.4f} | {100 * (loss / ref[2] - 1):+.1f}% | {100 * (last / ref[4] - 1):+.1f}% | "
                      f"{sec:.2f} | {floor:.5f} |")
            print(md[-1], flush=True)
        curves[name] = rows

    (args.out / f"iterations{args.suffix}.md").write_text("\n".join(md) + "\n")
    plot(curves, sweep, args)
    strip(lasts, sweep, args)


def strip(lasts: dict, sweep: list[int], args) -> None:
    """The last frame of each clip, one column per sweep value: what the loss numbers look like."""
    import cv2
    rows = []
    for name in dict.fromkeys(name for name, _ in lasts):
        tiles = []
        for n in sweep:
            tile = cv2.cvtColor(lasts[(name, n)], cv2.COLOR_RGB2BGR)
            cv2.putText(tile, f"{name}, {n} it", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                        cv2.LINE_AA)
            tiles.append(tile)
        h = min(t.shape[0] for t in tiles)
        rows.append(np.hstack([t[:h] for t in tiles]))
    w = min(r.shape[1] for r in rows)
    cv2.imwrite(str(args.out / f"iterations{args.suffix}_strip.jpg"), np.vstack([r[:, :w] for r in rows]),
                [cv2.IMWRITE_JPEG_QUALITY, 88])


def plot(curves: dict, sweep: list[int], args) -> None:
    """E_warp and loss against frame iterations, as ratios to the balanced preset's."""
    try:
        import matplotlib
    except ImportError:  # the GPU machine may lack it; the table is what counts
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_e, ax_l) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, rows in curves.items():
        ns = sorted(rows)
        ref = rows.get(BALANCED, rows[ns[-1]])
        ax_e.plot(ns, [rows[n][1] / ref[1] for n in ns], marker="o", label=name)
        ax_l.plot(ns, [rows[n][2] / ref[2] for n in ns], marker="o", label=name)
    for ax, what in ((ax_e, "E_warp"), (ax_l, "loss (no temporal term)")):
        ax.axvline(BALANCED, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xticks(sweep, [str(n) for n in sweep])
        ax.set_xlabel("frame iterations")
        ax.set_ylabel(f"{what}, ratio to {BALANCED}")
    ax_e.legend()
    fig.suptitle(f"{args.size} px, balanced preset")
    fig.tight_layout()
    fig.savefig(args.out / f"iterations{args.suffix}.png", dpi=110)


if __name__ == "__main__":
    main()
