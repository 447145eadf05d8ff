"""Flicker against working size and temporal weight (CPU): does the temporal weight need to grow
with the size?

    .venv/bin/python bench/temporal_size.py --runs 256:12.5,25,50 512:50,100,200

E_warp at 1280x720 was 7x that at 512x288 on the GPU (docs/gpu.md), and 1.6x from 512 to 1024 px
on Sintel (docs/resolution.md). Each clip here is native (or nearly) at every size: Sintel alley_2
is downscaled from 1024x436, and the pan (coffee) and orbit (astronaut) motions of
sample_media/make_sample_clip.py are rendered at 640x360 from the full stills in
../shared/media/content (the fastest part of their motion) and downscaled the same way. Per size,
the first frame is stylised once; each temporal weight then chains the same frames from it. Reported per run: the
clip's E_warp and the input's own, the mean loss of frames 2..N without the temporal term, and the
E_warp of each frame pair (a first-pair transient would point at an unsettled first frame).
Prints a markdown table; docs/temporal_size.md gathers the runs made so far.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from common import SHARED, STYLE, chain_frames, chain_from, clip_frames, image_losses, private_cache, sample_clip_maker
from nstvid.pipeline.flow import warping_error
from nstvid.pipeline.frames import to_u8, video_size
from nstvid.pipeline.media.images import read_image
from nstvid.pipeline.settings import Settings

CONTENT = SHARED / "content"
MOTIONS = {"pan": ("pan_frames", "coffee.png"), "orbit": ("orbit_frames", "astronaut.png")}
START = 30  # the sample clips' motion eases in; frames from 30 on move fastest
RENDER = 640  # px, the width of the largest still; the clips are rendered at this size


def native_frames(name: str, size: int, count: int) -> list[np.ndarray]:
    """`count` RGB uint8 frames of a clip at working size `size` (long side)."""
    if name not in MOTIONS:
        return clip_frames(name, size, count)
    motion, still = MOTIONS[name]
    motion = getattr(sample_clip_maker(), motion)
    # Rendered at RENDER px, then area-downscaled like the Sintel frames: a render straight at 256 px
    # samples the still without a low-pass filter and aliases (its own E_warp came out 6x that at 512).
    frames = motion(to_u8(read_image(CONTENT / still).rgb), (RENDER, RENDER * 9 // 16))
    h, w = video_size(RENDER, RENDER * 9 // 16, size)
    return [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
            for i, f in enumerate(frames) if START <= i < START + count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", nargs="+", default=["256:12.5,25,50", "512:50,100,200"],
                        help="SIZE:WEIGHT,WEIGHT,... per working size")
    parser.add_argument("--clips", default="pan,orbit,sintel")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--frame-iterations", type=int, default=30)
    parser.add_argument("--first-iterations", type=int, default=100)
    parser.add_argument("--out", type=Path, help="also write the table here (docs/temporal_size.md "
                        "gathers several runs, so it is not the default)")
    args = parser.parse_args()
    private_cache()
    runs = [(int(size), [float(w) for w in weights.split(",")])
            for size, weights in (r.split(":") for r in args.runs)]
    machine = (torch.cuda.get_device_name() if torch.cuda.is_available()
               else f"CPU, {torch.get_num_threads()} threads")
    md = ["# Flicker against working size and temporal weight", "",
          f"`.venv/bin/python bench/temporal_size.py {' '.join(sys.argv[1:])}` ({machine}, "
          f"torch {torch.__version__}); style starry_night.jpg, balanced preset except: "
          f"{args.first_iterations} iterations per scale for the first frame, "
          f"{args.frame_iterations} per later frame. E_warp: Lai et al., RGB in [0, 1], summed over "
          f"channels; loss: content + style + TV without the temporal term, frames 2..{args.frames}.", "",
          "| clip | size | temporal weight | E_warp | input's own | ratio | loss | last frame's loss | "
          "E_warp per pair |",
          "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(md), flush=True)
    for name in args.clips.split(","):
        for size, weights in runs:
            frames = native_frames(name, size, args.frames)
            base = Settings(styles=(str(STYLE),), size=size, frame_iterations=args.frame_iterations)
            first = chain_frames(dataclasses.replace(base, iterations=args.first_iterations), frames[:1])[0][0]
            floor = float(np.mean(warping_error(iter(frames), iter(frames))))
            for weight in weights:
                settings = dataclasses.replace(base, temporal_weight=weight)
                outs = chain_from(settings, frames, first)[0]
                pairs = warping_error(iter(outs), iter(frames))
                e_warp = float(np.mean(pairs))
                losses = image_losses(settings, outs[1:], frames[1:])[0]
                h, w = frames[0].shape[:2]
                md.append(f"| {name} | {w}x{h} | {weight:g} | {e_warp:.5f} | {floor:.5f} | "
                          f"{e_warp / floor:.2f}x | {np.mean(losses):.4f} | {losses[-1]:.4f} | "
                          f"{', '.join(f'{p:.5f}' for p in pairs)} |")
                print(md[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
