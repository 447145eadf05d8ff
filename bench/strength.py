"""Does a portrait stay recognisable at small sizes? The default look before and after --strength.

    .venv/bin/python bench/strength.py            # writes docs/strength.md and docs/strength.png

For the shared portraits (astronaut, chelsea) at each size, with the balanced preset: "before" is
the old default (style weight 10 at every size), "after" today's default (strength 0.5: the same
weight at 512 px, shrinking with the size below). Recognisability is measured as the output's
content loss over the content loss the style image itself has against the photo (0: the photo,
1: as unlike it as the painting); the issue behind this saw a face "barely recognisable" at 0.57.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from common import ROOT, SHARED, private_cache
from nstvid.pipeline.frames import to_tensor
from nstvid.pipeline.gatys import content_targets, objective
from nstvid.pipeline.image_job import stylise_pictures
from nstvid.pipeline.losses import style_weight_at
from nstvid.pipeline.media.images import read_image, resize_rgb
from nstvid.pipeline.prepare import prepare
from nstvid.pipeline.settings import Settings

STYLE = SHARED / "styles" / "starry_night.jpg"
PHOTOS = {"astronaut": SHARED / "content" / "astronaut.png", "chelsea": SHARED / "content" / "chelsea.png"}


def stylise(settings: Settings, photo: Path):
    """(output RGB float32, content loss ratio to the style image's own) for one photo."""
    prepared = prepare(settings)
    engine, styles = prepared.engine, prepared.styles
    picture = read_image(photo)
    (out,), _ = stylise_pictures(prepared, [picture])
    h, w = out.size
    content = to_tensor(resize_rgb(picture.rgb, (h, w)))
    painting = to_tensor(resize_rgb(read_image(STYLE).rgb, (h, w)))
    c_target, c_scale = content_targets(engine, content)
    with torch.no_grad():
        own = objective(engine, settings, to_tensor(out.rgb), c_target, c_scale, styles.targets((h, w)), None)[1]
        theirs = objective(engine, settings, painting, c_target, c_scale, styles.targets((h, w)), None)[1]
    return out.rgb, float(own / theirs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="128,192,256")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    private_cache()
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Settings(styles=(str(STYLE),))  # balanced preset values are the defaults
    rows = ["# The default look at small sizes: before and after --strength", "",
            f"`.venv/bin/python bench/strength.py {' '.join(sys.argv[1:])}` (CPU, {torch.get_num_threads()} "
            f"threads, precision {base.precision}); balanced preset, starry_night.jpg. Content ratio: the "
            "output's content loss over the style image's own (0: the photo, 1: as unlike it as the "
            "painting). Before: style weight 10 at every size. After: strength 0.5, style weight "
            "10 x size/512 below 512 px. Pictures: docs/strength.png (before above, after below).", "",
            "| photo | size | style weight before -> after | content ratio before | after |", "|---|---|---|---|---|"]
    print("\n".join(rows), flush=True)
    tiles: dict[str, list[np.ndarray]] = {"before": [], "after": []}
    for name, photo in PHOTOS.items():
        for size in sizes:
            after = replace(base, size=size)
            weight = style_weight_at(after.style_weight, after.strength, size)
            # the old default: the full weight at this size (strength 0.5 at 512 px is weight 10)
            before = replace(after, style_weight=after.style_weight * 512 / size) if size < 512 else after
            results = {label: stylise(s, photo) for label, s in (("before", before), ("after", after))}
            for label, (rgb, _) in results.items():
                tiles[label].append(cv2.resize(rgb, (192, round(192 * rgb.shape[0] / rgb.shape[1])),
                                               interpolation=cv2.INTER_CUBIC))
            was = style_weight_at(before.style_weight, before.strength, size)
            row = (f"| {name} | {size} | {was:.3g} -> {weight:.3g} | "
                   f"{results['before'][1]:.3f} | {results['after'][1]:.3f} |")
            rows.append(row)
            print(row, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "strength.md").write_text("\n".join(rows) + "\n")
    height = max(t.shape[0] for t in tiles["before"])
    strip = [np.concatenate([cv2.copyMakeBorder(t, 0, height - t.shape[0], 0, 4, cv2.BORDER_CONSTANT, value=(1, 1, 1))
                             for t in tiles[label]], axis=1) for label in ("before", "after")]
    image = np.clip(np.concatenate(strip, axis=0) * 255, 0, 255).astype(np.uint8)
    cv2.imwrite(str(args.out / "strength.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
