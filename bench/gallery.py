"""Contact sheet of the default settings on several real content/style pairs: docs/gallery.png.

    .venv/bin/python bench/gallery.py [--size 320] [--shared ../shared/media]

Rows: content | style | result, stylised with the balanced preset's weights at --size.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from common import ROOT, SHARED, private_cache
from nstvid.pipeline.image_job import stylise_pictures
from nstvid.pipeline.media.images import read_image
from nstvid.pipeline.prepare import prepare
from nstvid.pipeline.settings import load

PAIRS = [("content/chelsea.png", "styles/starry_night.jpg"), ("content/astronaut.png", "styles/wave.jpg"),
         ("content/rocket.jpg", "styles/starry_night.jpg"), ("content/coffee.png", "styles/wave.jpg")]


def tile(rgb: np.ndarray, height: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    bgr = cv2.cvtColor((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
    return cv2.resize(bgr, (round(w * height / h), height), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery.png")
    args = parser.parse_args()
    private_cache("nstvid-gallery-")
    rows = []
    for content, style in PAIRS:
        settings, _ = load({"styles": (str(args.shared / style),), "size": args.size}, preset="balanced")
        prepared = prepare(settings)
        t = time.perf_counter()
        picture = read_image(args.shared / content)
        (out,), result = stylise_pictures(prepared, [picture])
        print(f"{content} x {style}: {time.perf_counter() - t:.0f} s, content loss "
              f"{float(result.content[0]):.3f}, style loss {float(result.style[0]):.4f}", flush=True)
        height = 240
        row = [tile(picture.rgb, height), tile(prepared.styles.pictures[0].rgb, height), tile(out.rgb, height)]
        rows.append(np.hstack(row))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([cv2.copyMakeBorder(r, 4, 4, 0, width - r.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))
                       for r in rows])
    cv2.imwrite(str(args.out), sheet)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
