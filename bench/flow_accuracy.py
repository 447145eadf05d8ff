"""Flow accuracy on Sintel alley_2's one ground-truth pair (frame 2 -> 3): endpoint error at the
working size, for the DIS presets the chain can use and Farneback, computed on frames 1x, 2x and 4x
the working size (flow_scale) and brought down to it. A sanity check of flow accuracy, not a
ranking: the pair has small motion, and the chain is judged on bench/motion.py's yardstick.

    .venv/bin/python bench/flow_accuracy.py [--out docs/flow_accuracy.md]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from common import SINTEL
from nstvid.pipeline import flow


def farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (a, b)]
    return cv2.calcOpticalFlowFarneback(*grey, None, 0.5, 4, 9, 5, 5, 1.1, 0)


METHODS = {"DIS medium": lambda a, b: flow.compute_flow(a, b, "medium"),
           "DIS fine": lambda a, b: flow.compute_flow(a, b, "fine"),
           "Farneback": farneback}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    frame_a, frame_b = (cv2.cvtColor(cv2.imread(str(SINTEL / f"frame_000{k}.png")), cv2.COLOR_BGR2RGB) for k in (2, 3))
    truth = flow.read_flo(SINTEL / "gt" / "frame_0002.flo")
    bad = [cv2.imread(str(SINTEL / "gt" / part / "frame_0002.png"), 0) > 127 for part in ("invalid", "occlusions")]
    height, width = frame_a.shape[:2]
    rows = ["| working size | flow from | " + " | ".join(METHODS) + " |", "|---|---|" + "---|" * len(METHODS)]
    for long_side in (128, 192, 256):
        h, w = round(height * long_side / width), long_side
        want = flow.flow_at_size(truth, (h, w))
        valid = cv2.resize((~bad[0] & ~bad[1]).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.99
        for scale in (1, 2, 4):
            size = (long_side * scale, round(height * long_side * scale / width))
            a_s, b_s = (cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in (frame_a, frame_b))
            cells = []
            for method in METHODS.values():
                t = time.perf_counter()
                estimate = flow.flow_at_size(method(a_s, b_s).astype(np.float32), (h, w))
                ms = 1000 * (time.perf_counter() - t)
                cells.append(f"{np.hypot(*(estimate - want)[valid].T).mean():.3f} px ({ms:.0f} ms)")
            rows.append(f"| {w}x{h} | {scale}x ({size[0]}x{size[1]}) | " + " | ".join(cells) + " |")
    text = "\n".join(rows)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
