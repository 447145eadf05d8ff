"""Batching designs for video, measured on flicker: window batching (kept) vs segment streams.

    .venv/bin/python bench/batching.py        # writes docs/batching.md

(a) window batching (`--batch B`): frames t..t+B-1 optimised as one batch, each started from the
    last finished frame warped to it, temporal losses to that anchor and between neighbours.
(b) segment streams: the clip cut into S segments, each its own warm-start chain starting K frames
    early (the early frames are thrown away); the S current frames would form one batch on a GPU.
    Simulated here by running the S chains one after another: the outputs are the same, only the
    wall time differs, so this bench compares flicker only; GPU speed is in docs/gpu.md.
(c) what --devices does with S pieces (pipeline/video/pieces.py): (b) with a lead-in of LEAD_IN
    frames cross-faded into the previous piece's last frames (no scene cut in this clip).
All against the plain chain (batch 1). E_warp per consecutive pair, the input's DIS flow.
Every chain is the production one (video/stream.py stylise_frames), in line, with --batch set.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from common import CLIP, ROOT, STYLE, chain_frames, load_frames, private_cache
from nstvid.pipeline.flow import warping_error
from nstvid.pipeline.settings import Settings
from nstvid.pipeline.video.pieces import LEAD_IN, cross_fade, split_clip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--frame-iterations", type=int, default=30)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--lead", type=int, default=4, help="frames each segment of (b) starts early")
    parser.add_argument("--lead-in", type=int, default=LEAD_IN, help="cross-faded lead-in of (c)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "batching.md")
    args = parser.parse_args()
    private_cache()
    frames = load_frames(CLIP, args.size, args.frames)
    h, w = frames[0].shape[:2]
    settings = Settings(styles=(str(STYLE),), size=args.size, scales=1, iterations=args.iterations,
                        frame_iterations=args.frame_iterations)
    base, secs, _ = chain_frames(settings, frames)
    t_base = sum(secs)
    windowed, secs, _ = chain_frames(settings, frames, batch=args.batch)
    t_window = sum(secs)
    # (b) segment streams, each chain starting `lead` frames before its segment.
    length = -(-len(frames) // args.segments)
    segmented = []
    for j in range(args.segments):
        start, end = j * length, min(len(frames), (j + 1) * length)
        lead_start = max(0, start - args.lead)
        outs, _, _ = chain_frames(settings, frames[lead_start:end])
        segmented += outs[start - lead_start:]
    # (c) --devices: the same pieces as the real command, lead-ins cross-faded.
    pieces = split_clip(len(frames), args.segments, [0.0] * (len(frames) - 1), settings.scene_cut_threshold,
                        lead_in=args.lead_in)
    faded: list = [None] * len(frames)
    for piece in pieces:
        outs, _, _ = chain_frames(settings, frames[piece.start:piece.stop_at])
        for index, out in zip(range(piece.start, piece.stop_at), outs):
            if index < piece.keep_from:
                faded[index] = cross_fade(faded[index], out, piece, index)
            else:
                faded[index] = out
    e = {name: warping_error(iter(o), iter(frames)) for name, o in
         (("batch 1", base), (f"window batch {args.batch}", windowed), ("segments", segmented),
          (f"devices (lead-in {args.lead_in}, cross-fade)", faded))}
    ref = np.array(e["batch 1"])
    window_bounds = [i - 1 for i in range(args.batch, len(frames), args.batch)]  # pair index i-1 -> i
    seams = [i - 1 for i in range(length, len(frames), length)]
    fades = [i - 1 for p in pieces[1:] for i in range(p.start, p.keep_from + 1)]
    lines = ["# Video batching designs: flicker", "",
             f"`.venv/bin/python bench/batching.py {' '.join(sys.argv[1:])}`: first {args.frames} frames of "
             f"pan.mp4 at {w}x{h}, {args.iterations} iterations on the first frame, "
             f"{args.frame_iterations} per later frame; (b) with {args.segments} segments, each "
             f"started {args.lead} frames early. E_warp per consecutive pair; ratios against batch 1.", "",
             "| design | mean E_warp | ratio | worst pair ratio | mean ratio at boundaries | CPU s (sequential) |",
             "|---|---|---|---|---|---|"]
    for name, pairs in e.items():
        pairs = np.array(pairs)
        bounds = (window_bounds if name.startswith("window") else seams if name == "segments"
                  else fades if name.startswith("devices") else [])
        at = f"{np.mean(pairs[bounds] / ref[bounds]):.2f}x" if bounds else "-"
        secs = {"batch 1": t_base, f"window batch {args.batch}": t_window}.get(name)
        lines.append(f"| {name} | {pairs.mean():.5f} | {pairs.mean() / ref.mean():.2f}x | "
                     f"{(pairs / ref).max():.2f}x | {at} | {'-' if secs is None else f'{secs:.0f}'} |")
        print(lines[-1], flush=True)
    lines += ["", "Per pair (E_warp x 1e3):", "",
              "| pair | " + " | ".join(e) + " |", "|---" * (len(e) + 1) + "|"]
    for i in range(len(ref)):
        marks = ("W" if i in window_bounds else "") + ("S" if i in seams else "") + ("F" if i in fades else "")
        lines.append(f"| {i + 1}->{i + 2} {marks} | " + " | ".join(f"{1e3 * e[k][i]:.3f}" for k in e) + " |")
    lines += ["", "W: window boundary of (a); S: segment seam of (b); F: pair inside a cross-fade of (c)."]
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
