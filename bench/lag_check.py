"""Lag behind the motion at a low strength (0.1): chain variants against --independent.

    .venv/bin/python bench/lag_check.py video/realshort.mp4 --frames 12 --size 96

Each output frame is matched against input frames k-3..k+3 (common.lag_count); prints
(frames closer to another input frame than to their own, of them an earlier one, frames compared).
One scale, 40 iterations for full frames, fp32: the settings of tests/test_motion.py.
"""
from __future__ import annotations

import argparse
import time

from common import STYLE, at_size, chain_frames, lag_count, master_frames
from nstvid.pipeline.frames import video_size
from nstvid.pipeline.settings import Settings

VARIANTS = {"default": {}, "before": {"revealed": "content", "settle_iterations": 0},
            "flow2": {"flow_scale": 2.0}, "check": {"flow_check": 16.0}, "independent": {"independent": True}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("clip", help="under ../shared/media, e.g. video/realshort.mp4")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    master = master_frames(args.clip, args.first, args.frames)
    h, w = size = video_size(master[0].shape[1], master[0].shape[0], args.size)
    inputs = at_size(master, (w, h))
    for name in args.variants.split(","):
        settings = Settings(styles=(str(STYLE),), size=args.size, scales=1, iterations=40, strength=0.1,
                            precision="fp32", **VARIANTS[name])
        sources = inputs if settings.flow_scale == 1 else at_size(master, (2 * w, 2 * h))
        started = time.time()
        outs, _, _ = chain_frames(settings, sources, size=size)
        print(args.clip, args.size, name, lag_count(outs, inputs), f"{time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
