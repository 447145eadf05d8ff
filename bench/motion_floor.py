"""The floor of E_warp for a painting: what a painting that follows the footage *exactly* scores
under ../shared/tools/motion_eval, at its own texture and at lower ones (docs/motion.md).

    .venv/bin/python bench/motion_floor.py bench/.motion-cache/realshort-192-KEY

Frame 1 of a cached bench/motion.py run (its input and its painting) is moved by one known smooth
motion (a few px of translation and a 4% zoom over the clip, Lanczos, each frame from the original,
so nothing accumulates), input and painting alike; the painting is also blurred to lower textures.
motion_eval then scores each as it scores the chain.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

from motion import MOTION_EVAL, read_video, write_lossless

FRAMES = 36
BLURS = (0.0, 0.4, 0.5)  # Gaussian sigmas (px) applied to the painting


def moved(image: np.ndarray, k: int) -> np.ndarray:
    """image moved to frame k of the known motion."""
    h, w = image.shape[:2]
    t = k / FRAMES
    dx, dy, s = 6 * np.sin(2 * np.pi * t) + 4 * t, 3 * np.cos(2 * np.pi * 1.3 * t), 1 + 0.04 * t
    m = np.float32([[s, 0, dx + (1 - s) * w / 2], [0, s, dy + (1 - s) * h / 2]])
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)


def texture(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a bench/motion.py cache folder (input.mkv, output.mkv)")
    a = ap.parse_args()
    painting = read_video(a.run / "output.mkv")[0]
    h, w = painting.shape[:2]
    photo = cv2.resize(read_video(a.run / "input.mkv")[0], (w, h), interpolation=cv2.INTER_AREA)
    print("| painting (frame 1, moved exactly with the footage) | its texture | E_warp x own (TV-L1) |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder) / "in.mkv"
        write_lossless(inputs, [moved(photo, k) for k in range(FRAMES)])
        for sigma in BLURS:
            paint = cv2.GaussianBlur(painting, (0, 0), sigma) if sigma else painting
            out = Path(folder) / f"paint{sigma}.mkv"
            write_lossless(out, [moved(paint, k) for k in range(FRAMES)])
            r = json.loads(subprocess.run([str(MOTION_EVAL), str(inputs), str(out), "--json"], capture_output=True,
                                          text=True, check=True).stdout.splitlines()[-1])
            name = f"blurred (Gaussian {sigma} px)" if sigma else "as painted"
            print(f"| {name} | {texture(paint) / texture(painting):.2f} | {r['ratio']:.2f}x |")


if __name__ == "__main__":
    main()
