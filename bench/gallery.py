"""Contact sheet of the default settings on several real content/style pairs: docs/gallery.jpg.

    .venv/bin/python bench/gallery.py [--size 320] [--shared ../shared/media]

Rows: content | style | result. Each result is what `nstvid CONTENT --style STYLE --size SIZE`
writes (pipeline/image_job.stylise_file, the command's own path): the balanced preset (the
defaults), painted at --size and carried to the photo's own size by the guided detail step. Each
tile is shrunk to 240 px high for the sheet, a JPEG so that the README's picture stays small.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from common import ROOT, SHARED, private_cache
from nstvid.pipeline.image_job import stylise_file
from nstvid.pipeline.media.images import read_image
from nstvid.pipeline.prepare import prepare
from nstvid.pipeline.settings import load

PAIRS = [("content/chelsea.png", "styles/starry_night.jpg"), ("content/astronaut.png", "styles/wave.jpg"),
         ("content/rocket.jpg", "styles/starry_night.jpg"), ("content/coffee.png", "styles/wave.jpg")]
HEIGHT = 240  # of each tile on the sheet


def tile(rgb: np.ndarray, height: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    bgr = cv2.cvtColor((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
    return cv2.resize(bgr, (round(w * height / h), height), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery.jpg")
    args = parser.parse_args()
    private_cache("nstvid-gallery-")
    rows = []
    with tempfile.TemporaryDirectory(prefix="nstvid-gallery-out-") as folder:
        for content, style in PAIRS:
            settings, _ = load({"styles": (str(args.shared / style),), "size": args.size}, preset="balanced")
            prepared = prepare(settings)
            out_path = Path(folder) / f"{Path(content).stem}.png"
            outcome = stylise_file(prepared, args.shared / content, out_path)
            picture, out = read_image(args.shared / content), read_image(out_path)
            print(f"{content} x {style}: {outcome.seconds:.0f} s, {outcome.iterations} iterations at the finest "
                  f"scale, output {out.size[1]}x{out.size[0]}, content loss {outcome.content_loss:.3f}, "
                  f"style loss {outcome.style_loss:.4f}", flush=True)
            rows.append(np.hstack([tile(picture.rgb, HEIGHT), tile(prepared.styles.pictures[0].rgb, HEIGHT),
                                   tile(out.rgb, HEIGHT)]))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([cv2.copyMakeBorder(r, 4, 4, 0, width - r.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))
                       for r in rows])
    cv2.imwrite(str(args.out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
