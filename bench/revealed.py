"""Do newly revealed regions look painted at once? What their pixels start from, measured.

    .venv/bin/python bench/revealed.py        # writes docs/revealed.md and docs/revealed_strip.jpg

Where the camera or an object reveals new content, the flow has nothing to bring from the previous
stylised frame. For each `revealed` start (content: Ruder et al.'s, today's; inpaint: the warped
output inpainted into those pixels; warp: the warped output as it is), the balanced chain runs over
pan, orbit and Sintel alley_2 from one shared first frame. A pixel's age counts the frames since it
was revealed (the chain's own mask, < 0.5, carried along the flow); the style loss inside pixels
of each age, over that of the same shape moved onto never-revealed pixels (as large and as thin,
so a Gram of few pixels, and the frame's border, weigh alike on both sides), divided by the same
ratio on a full optimisation of that frame (--independent: what a region of that shape scores
when it is as painted as the rest), says how painted new regions are: 1.00 is fully.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for bench.temporal

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.temporal import STYLE, chain_frames, clip_frames  # noqa: E402
from nstvid.pipeline import flow  # noqa: E402
from nstvid.pipeline.frames import to_tensor  # noqa: E402
from nstvid.pipeline.prepare import prepare  # noqa: E402
from nstvid.pipeline.settings import STYLE_LAYERS, Settings  # noqa: E402

MODES = ("content", "inpaint", "warp")
AGES = 5  # revealed within the last 5 frames (the window)
OLD = 255  # age of pixels never revealed


def ages_of(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Per frame, uint8 (H, W): frames since each pixel was revealed (0: revealed in this frame),
    OLD where it has been visible since the first frame. Revealed: the chain's reliability < 0.5."""
    h, w = frames[0].shape[:2]
    ages = [np.full((h, w), OLD, np.uint8)]
    for prev, frame in zip(frames, frames[1:]):
        backward = flow.compute_flow(frame, prev)
        trusted = flow.reliability(flow.compute_flow(prev, frame), backward) >= 0.5
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        carried = cv2.remap(ages[-1], grid_x + backward[..., 0], grid_y + backward[..., 1],
                            cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        older = np.where(carried == OLD, OLD, np.minimum(carried.astype(np.int32) + 1, OLD - 1))
        ages.append(np.where(trusted, older, 0).astype(np.uint8))
    return ages


def masked_style_loss(engine, styles, image: np.ndarray, weight: np.ndarray) -> float:
    """Style loss of the pixels weighted by `weight` (H, W) in [0, 1]: per layer, the Gram of the
    features times the weight (downsampled by area to the layer), over C x the weights' sum,
    against the style's Gram target, normalised as in losses.style_loss."""
    h, w = image.shape[:2]
    targets = styles.targets((h, w))
    with torch.no_grad():
        feats = engine.features(to_tensor(image.astype(np.float32) / 255).to(engine.device))
    total = 0.0
    for layer, target, scale, lw in zip(STYLE_LAYERS, targets.grams, targets.scales,
                                        engine.settings.style_layer_weights):
        f = feats[layer].float()[0]
        c, fh, fw = f.shape
        m = torch.from_numpy(cv2.resize(weight, (fw, fh), interpolation=cv2.INTER_AREA)).to(f.device)
        rows = f.reshape(c, -1) * m.reshape(1, -1).sqrt()
        gram = rows @ rows.T / (c * m.sum().clamp_min(1e-6))
        total += lw * float((gram - target[0]).square().mean() / scale[0])
    return total / sum(engine.settings.style_layer_weights)


def twin(region: np.ndarray, old: np.ndarray) -> np.ndarray | None:
    """The same shape moved half a frame (across, else down) onto never-revealed pixels: a region
    as large and as thin, so the Gram's noise from few pixels is the same on both sides. None if
    under half of it lands on such pixels."""
    h, w = region.shape
    for shift, axis in ((w // 2, 1), (h // 2, 0)):
        moved = np.roll(region, shift, axis=axis) * old
        if moved.sum() >= 0.5 * region.sum():
            return moved
    return None


def region_ratios(engine, styles, output: np.ndarray, age: np.ndarray) -> dict[int, float]:
    """{age: style loss of the pixels of that age over that of their twin among the never-revealed
    pixels} for one frame; regions under 1% of the frame are left out (too few pixels)."""
    old = (age == OLD).astype(np.float32)
    ratios = {}
    for a in range(AGES):
        region = (age == a).astype(np.float32)
        other = twin(region, old) if region.mean() >= 0.01 else None
        if other is not None:
            ratios[a] = (masked_style_loss(engine, styles, output, region)
                         / masked_style_loss(engine, styles, output, other))
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--every", type=int, default=3, help="measure every n-th frame (each needs a full optimisation)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    os.environ.setdefault("NSTVID_CACHE_DIR", tempfile.mkdtemp(prefix="nstvid-bench-cache-"))
    base = Settings(styles=(str(STYLE),), size=args.size, precision="fp32")
    engine, styles = prepare(base)
    clips = {name: clip_frames(name, args.size, args.frames) for name in ("pan", "orbit")}
    clips["sintel alley_2"] = clip_frames("sintel", args.size, 4)
    md = ["# Newly revealed regions: what their pixels start from", "",
          f"`.venv/bin/python bench/revealed.py {' '.join(sys.argv[1:])}` (CPU, {torch.get_num_threads()} "
          f"threads, fp32); balanced preset at {args.size} px, starry_night.jpg, first {args.frames} frames "
          f"(Sintel: its 4), measured at every {args.every}rd frame. Per region of pixels revealed a "
          "frames ago: its style loss over that of its twin (the same shape moved half a frame onto "
          "never-revealed pixels), divided by the same ratio on a full optimisation of that frame. "
          "1.00: as painted, relative to the rest, as a fully optimised frame; the issue's target "
          "is 1.10 by age 2. Mean (count of frames).", "",
          "| clip | start | age 0 | age 1 | age 2 | age 3 | age 4 | revealed share |", "|---|---|---|---|---|---|---|---|"]
    print("\n".join(md), flush=True)
    strip = []
    for name, frames in clips.items():
        ages = ages_of(frames)
        first, _, _ = chain_frames(base, frames[:1])
        results = {mode: chain_frames(dataclasses.replace(base, revealed=mode), frames, {0: first[0]})[0]
                   for mode in MODES}
        share = float(np.mean([(a < AGES).mean() for a in ages[1:]]))
        scores: dict[str, dict[int, list[float]]] = {mode: {a: [] for a in range(AGES)} for mode in MODES}
        for t in range(args.every, len(frames), args.every):
            full, _, _ = chain_frames(dataclasses.replace(base, independent=True), frames[t:t + 1])
            control = region_ratios(engine, styles, full[0], ages[t])
            for mode in MODES:
                for a, ratio in region_ratios(engine, styles, results[mode][t], ages[t]).items():
                    if a in control:
                        scores[mode][a].append(ratio / control[a])
        for mode in MODES:
            cells = [f"{np.mean(v):.2f} ({len(v)})" if v else "-" for v in scores[mode].values()]
            md.append(f"| {name} | {mode} | {' | '.join(cells)} | {100 * share:.1f}% |")
            print(md[-1], flush=True)
        if name == "pan":
            k = min(3, len(frames) - 1)
            edge = np.repeat(((ages[k] < AGES) * 255).astype(np.uint8)[..., None], 3, axis=2)
            strip = [np.concatenate([frames[k], edge], axis=1)] + [
                np.concatenate([results[m][k - 1], results[m][k]], axis=1) for m in MODES]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "revealed.md").write_text("\n".join(md) + "\n\nStrip (revealed_strip.jpg): pan, frame "
                                          "4 and its revealed pixels on top; then frames 3 and 4 for "
                                          f"each start: {', '.join(MODES)}.\n")
    cv2.imwrite(str(args.out / "revealed_strip.jpg"), cv2.cvtColor(np.concatenate(strip, axis=0), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 88])


if __name__ == "__main__":
    main()
