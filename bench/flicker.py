"""Where the chain's flicker, pop, lag and unpainted motion come from on real footage, by variant.

    .venv/bin/python bench/flicker.py --size 128 --frames 10 --variants base,flow2,check,settle
    .venv/bin/python bench/flicker.py --size 128 --frames 10 --out docs   # also writes the tables

Every real clip in ../shared/media/video (and Sintel alley_2) runs through the real chain
(video/stream.py stylise_frames, batch 1, in line) at the balanced preset, once per variant (a set of
settings over the preset). Frames are decoded at the source size and resized by the chain's own
plan, so a variant's flow_scale sees the larger frames a job decodes. For each clip and variant:

- E_warp (Lai et al. 2018, as nstvid-eval: DIS on the input at the working size, hard mask) of
  the raw stylised frames, over the input's own; the first pair over the clip's median pair (the
  pop); E_warp split by where the pixels are, inside the evaluator's reliable area: pixels the
  chain's own mask trusts (>= 0.5) or distrusts, and static (input flow under 0.5 px) or moving;
- texture energy (variance of the Laplacian of the grey output) of frame 1 against frames 2+;
- the style and content losses without the temporal term (frames 2+), against the base variant;
- revealed: the style loss of pixels revealed within the last 2 frames (the chain's mask, carried
  along the flow) over that of the same shape on never-revealed pixels (tests/metrics.py's
  revealed_ratio, bench/revealed.py's method; 1.0: as painted as the rest), mean over frames where the region is >= 1%;
- lag (with --lag-strength): each output frame against input frames k-3..k+3 (correlation of
  blurred grey images); frames whose best match is not their own, of those compared;
- seconds per later frame (flow planning and optimisation), in this one run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np

from common import (
    SAMPLES,
    STYLE,
    at_size,
    chain_frames,
    lag_count,
    losses_per_frame,
    master_frames,
    private_cache,
    revealed_ratio,
)
from nstvid.pipeline import flow
from nstvid.pipeline.frames import flow_source_size, video_size
from nstvid.pipeline.plot import flicker_plot
from nstvid.pipeline.settings import Settings
from nstvid.pipeline.video.plan import _flow_and_mask

# (name, file, first frame): people_walking is 1394 frames; its people walk in from about frame 300.
CLIPS = [("realshort", "video/realshort.mp4", 0), ("water_handheld", "video/water_handheld.mp4", 0),
         ("friday_film", "video/friday_film.mp4", 0), ("people_walking", "video/people_walking.mp4", 330),
         ("sintel_market", "video/sintel_market_50.mp4", 0), ("sintel_alley_2", "sintel/alley_2_clean", 0),
         # sample_media/cut.mp4: 12 frames of water_handheld, then 12 of friday_film (a scene cut)
         ("cut", str(SAMPLES / "cut.mp4"), 0)]
VARIANTS = {
    "base": {},
    # the defaults before issue 22: revealed pixels from the content, no settle iterations
    "before": {"revealed": "content", "settle_iterations": 0},
    "flow2": {"flow_scale": 2.0},
    "flow4": {"flow_scale": 4.0},
    "check": {"flow_check": 16.0},
    "cubic": {"warp_interpolation": "cubic"},
    "lanczos": {"warp_interpolation": "lanczos"},
    "settle": {"settle_iterations": 30},
    "inpaint": {"revealed": "inpaint"},
    "flow2+inpaint": {"flow_scale": 2.0, "revealed": "inpaint"},
    "check+inpaint": {"flow_check": 16.0, "revealed": "inpaint"},
    "combo": {"flow_scale": 2.0, "flow_check": 16.0, "revealed": "inpaint", "settle_iterations": 30,
              "warp_interpolation": "lanczos"},
}


def pair_split(settings: Settings, outs, inputs, sources, size, skip=()) -> dict[str, float]:
    """E_warp sums over the run, split by the chain's own mask and by motion (see module doc);
    pairs in skip (their index: frames k, k+1) left out."""
    parts = {k: [0.0, 0] for k in ("trusted", "distrusted", "static", "moving")}
    for t in (t for t in range(1, len(outs)) if t - 1 not in skip):
        backward = flow.compute_flow(inputs[t], inputs[t - 1])
        keep = flow.reliability(flow.compute_flow(inputs[t - 1], inputs[t]), backward, blur=False) > 0.5
        warped = flow.warp(outs[t - 1].astype(np.float32) / 255, backward)
        sq = np.sum((outs[t].astype(np.float32) / 255 - warped) ** 2, axis=-1)
        _, chain_mask = _flow_and_mask(settings, sources[t], sources[t - 1], size)
        moving = np.linalg.norm(backward, axis=-1) >= 0.5
        for name, where in (("trusted", chain_mask >= 0.5), ("distrusted", chain_mask < 0.5),
                            ("static", ~moving), ("moving", moving)):
            sel = keep & where
            parts[name][0] += float(sq[sel].sum())
            parts[name][1] += int(sel.sum())
    total = sum(parts[k][1] for k in ("trusted", "distrusted"))
    return {k: (s / n if n else float("nan")) for k, (s, n) in parts.items()} | {
        "distrusted_share": parts["distrusted"][1] / max(total, 1),
        "moving_share": parts["moving"][1] / max(total, 1)}


def texture(frame: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def measure(name, settings, master, lag_strength, with_revealed, cut_pair=None):
    """One clip, one variant (module doc). cut_pair: the index of the pair that crosses a scene
    cut, left out of the means; the pop is then the first pair of each shot over its median."""
    h, w = size = video_size(master[0].shape[1], master[0].shape[0], settings.size)
    inputs = at_size(master, (w, h))
    sources = at_size(master, flow_source_size(master[0].shape[1], master[0].shape[0], size, settings))
    outs, secs, _ = chain_frames(settings, sources, size=size)
    pairs = flow.warping_error(iter(outs), iter(inputs))
    floor = flow.warping_error(iter(inputs), iter(inputs))
    shots = [(0, len(pairs))] if cut_pair is None else [(0, cut_pair), (cut_pair + 1, len(pairs))]
    kept = [k for a, b in shots for k in range(a, b)]
    pops = [pairs[a] / np.median(pairs[a + 1:b]) for a, b in shots if b - a > 2]
    _, content, style = losses_per_frame(settings, outs[1:], inputs[1:])
    row = {"clip": name, "e_warp": float(np.mean([pairs[k] for k in kept])),
           "own": float(np.mean([floor[k] for k in kept])),
           "pairs": [float(p) for p in pairs], "own_pairs": [float(p) for p in floor],
           "pop": float(max(pops)) if pops else float("nan"), "pops": [float(p) for p in pops],
           "style": float(np.mean(style)), "content": float(np.mean(content)),
           "texture_first": texture(outs[0]), "texture_later": float(np.mean([texture(o) for o in outs[1:]])),
           "sec_later": float(np.mean(secs[1:])),
           **pair_split(settings, outs, inputs, sources, size, skip=() if cut_pair is None else (cut_pair,))}
    if with_revealed:
        row["revealed"], row["revealed_frames"] = revealed_ratio(settings, outs, inputs)
    if lag_strength:
        low, _, _ = chain_frames(dataclasses.replace(settings, strength=lag_strength), sources, size=size)
        row["lag"] = lag_count(low, inputs)
    return row, outs


def save_outputs(folder: Path, clip: str, variant: str, outs: list[np.ndarray]) -> None:
    """The raw stylised frames, to measure again or to cut a strip from without a rerun."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / f"{clip}-{variant.replace('+', '_')}.npz", frames=np.stack(outs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--clips", default=",".join(c[0] for c in CLIPS))
    parser.add_argument("--variants", default="base,flow2,check,cubic,settle,inpaint")
    parser.add_argument("--set", action="append", default=[],
                        help="NAME=key:value,key:value: a variant of your own (values as JSON)")
    parser.add_argument("--lag-strength", type=float, default=0.0, help="e.g. 0.1; 0: no lag runs")
    parser.add_argument("--revealed", action="store_true", help="also the revealed-region ratio")
    parser.add_argument("--json", type=Path, help="append each row as a JSON line here")
    parser.add_argument("--out", type=Path, help="write the markdown table here (a file)")
    parser.add_argument("--plot", type=Path, help="E_warp per frame pair of the cut clip, per variant (PNG)")
    parser.add_argument("--strip", type=Path,
                        help="frames 1, 2 and the last of realshort: input, then each variant (JPEG)")
    parser.add_argument("--keep", type=Path, help="save each run's frames here (.npz per clip and variant)")
    args = parser.parse_args()
    private_cache()
    variants = dict(VARIANTS)
    for spec in args.set:
        vname, _, pairs = spec.partition("=")
        variants[vname] = {k: json.loads(v) for k, v in (p.split(":", 1) for p in pairs.split(","))}
    base = Settings(styles=(str(STYLE),), size=args.size)
    header = ("| clip | variant | E_warp | x own | first pair / median | trusted | distrusted (share) | "
              "static | moving (share) | texture 1 -> 2+ | style vs base | content vs base | revealed | lag | "
              "s / later frame |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    print("\n".join(lines), flush=True)
    plotted, strip = {}, []
    for clip, file, first in CLIPS:
        if clip not in args.clips.split(","):
            continue
        count = 4 if clip == "sintel_alley_2" else 24 if clip == "cut" else args.frames
        ref, master = None, master_frames(file, first, count)
        for vname in args.variants.split(","):
            settings = dataclasses.replace(base, **variants[vname])
            row, outs = measure(clip, settings, master, args.lag_strength, args.revealed,
                                cut_pair=11 if clip == "cut" else None)
            if args.keep:
                save_outputs(args.keep, clip, vname, outs)
            if clip == "cut":
                plotted[vname], plotted["input"] = row["pairs"], row["own_pairs"]
            if clip == "realshort" and args.strip:
                picks = (0, 1, len(outs) - 1)
                if not strip:
                    strip.append(np.concatenate([at_size(master, outs[0].shape[1::-1])[k] for k in picks], axis=1))
                strip.append(np.concatenate([outs[k] for k in picks], axis=1))
            row["variant"] = vname
            ref = ref or row
            lag = row.get("lag")
            lines.append(
                f"| {clip} | {vname} | {row['e_warp']:.5f} | {row['e_warp'] / row['own']:.2f}x | {row['pop']:.2f} | "
                f"{row['trusted']:.5f} | {row['distrusted']:.5f} ({100 * row['distrusted_share']:.0f}%) | "
                f"{row['static']:.5f} | {row['moving']:.5f} ({100 * row['moving_share']:.0f}%) | "
                f"{row['texture_first']:.0f} -> {row['texture_later']:.0f} | "
                f"{100 * (row['style'] / ref['style'] - 1):+.1f}% | "
                f"{100 * (row['content'] / ref['content'] - 1):+.1f}% | "
                f"{row.get('revealed', float('nan')):.2f} | {'-' if lag is None else f'{lag[0]}/{lag[2]}'} | "
                f"{row['sec_later']:.1f} |")
            print(lines[-1], flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(row) + "\n")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    if args.plot and plotted:
        own = plotted.pop("input")
        flicker_plot(args.plot, own, plotted, cuts=[12])  # pair 12: frames 12 and 13, the cut
    if args.strip and strip:
        cv2.imwrite(str(args.strip), cv2.cvtColor(np.concatenate(strip, axis=0), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])


if __name__ == "__main__":
    main()
