"""Flicker and speed of the video chain against independent frames, on real clips (CPU).

    .venv/bin/python bench/temporal.py        # writes docs/temporal.md and docs/temporal.png

1. Same iterations per frame: flow warm start + temporal loss ("chained") vs --independent, per-frame
   E_warp (Lai et al. 2018, RGB in [0, 1], the input's DIS flow and hard occlusion mask) and the
   mean style loss of the outputs, for the sample clip and a second real-motion clip.
2. Speed: seconds per frame after the first with the default preset's frame iterations, against
   --independent given enough iterations to reach the same mean loss (content + style + TV, no
   temporal term), found by doubling.
3. Drift: a static shot of --static-frames frames: mean colour and style loss, first vs last frame.
4. Real footage: the hand-held realshort.mp4 (leaves moving on their own) and Sintel alley_2 with
   the balanced preset at --real-size: E_warp against the input's own and against --independent,
   the loss without the temporal term, and the candidates for where flicker comes from.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from common import ROOT, SAMPLES, STYLE, chain_frames, clip_frames, image_losses, load_frames, private_cache
from nstvid.pipeline.flow import warping_error
from nstvid.pipeline.frames import to_u8, video_size
from nstvid.pipeline.media.images import read_image
from nstvid.pipeline.settings import Settings

CLIPS = [SAMPLES / "pan.mp4", SAMPLES / "orbit.mp4"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=40, help="per frame, both modes (part 1)")
    parser.add_argument("--speed-frames", type=int, default=2)
    parser.add_argument("--speed-size", type=int, default=128)
    parser.add_argument("--parts", default="1,2,3")
    parser.add_argument("--static-frames", type=int, default=300)
    parser.add_argument("--static-size", type=int, default=96, help="the 300-frame run is long on a CPU")
    parser.add_argument("--real-size", type=int, default=256)
    parser.add_argument("--real-frames", type=int, default=12)
    parser.add_argument("--real-independent-frames", type=int, default=4,
                        help="independent frames are full optimisations, long on a CPU")
    parser.add_argument("--real-variants", default="temporal,iterations,noflow",
                        help="candidates besides balanced and independent: temporal, iterations, noflow")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    private_cache()
    base = Settings(styles=(str(STYLE),), size=args.size, scales=1, tolerance=0)
    parts = {int(p) for p in args.parts.split(",")}
    command = f"`.venv/bin/python bench/temporal.py {' '.join(sys.argv[1:])}`"
    machine = f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if 1 in parts:
        save_section(args.out / "temporal.md", "## 1.", part_quality(args, base, command, machine))
    if 2 in parts:
        save_section(args.out / "temporal.md", "## 2.", part_speed(args, command, machine))
    if 3 in parts:
        save_section(args.out / "temporal.md", "## 3.", part_drift(args, command, machine))
    if 4 in parts:
        save_section(args.out / "temporal.md", "## 4.", part_real(args, command, machine))


def save_section(path: Path, marker: str, lines: list[str]) -> None:
    """Replace (or add) the section starting with `marker` in the markdown file; keep the others."""
    title = "# Temporal stability and speed of the video chain\n"
    text = path.read_text() if path.exists() else title
    sections = {}
    for chunk in text.split("\n## ")[1:]:
        sections["## " + chunk.split(" ", 1)[0]] = "## " + chunk.rstrip() + "\n"
    sections[marker] = "\n".join(lines).rstrip() + "\n"
    path.write_text(title + "\n" + "\n".join(sections[k] for k in sorted(sections)))


def part_quality(args, base, command, machine) -> list[str]:
    md = [f"## 1. Same iterations per frame ({args.iterations}), chained vs independent", "",
          f"{command} ({machine}); style starry_night.jpg, {args.size} px long side, first "
          f"{args.frames} frames of each clip. Plot: temporal.png.", "",
          "| clip | mode | mean E_warp | ratio to independent | mean style loss | style vs independent "
          "| input's own E_warp |",
          "|---|---|---|---|---|---|---|"]
    curves = {}
    for clip in CLIPS:
        frames = load_frames(clip, args.size, args.frames)
        floor = float(np.mean(warping_error(iter(frames), iter(frames))))
        result = {}
        for mode, settings in (
                ("chained", dataclasses.replace(base, iterations=args.iterations,
                                                frame_iterations=args.iterations)),
                ("independent", dataclasses.replace(base, iterations=args.iterations, independent=True))):
            outs, _, _ = chain_frames(settings, frames)
            pairs = warping_error(iter(outs), iter(frames))
            _, style = image_losses(settings, outs, frames)
            result[mode] = (float(np.mean(pairs)), float(np.mean(style)))
            curves[(clip.stem, mode)] = pairs
        ind_e, ind_s = result["independent"]
        for mode, (e, s) in result.items():
            md.append(f"| {clip.name} | {mode} | {e:.5f} | {e / ind_e:.3f}x | {s:.4f} | "
                      f"{100 * (s / ind_s - 1):+.1f}% | {floor:.5f} |")
            print(md[-1], flush=True)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(CLIPS), figsize=(11, 3.6), sharey=True)
    for ax, clip in zip(axes, CLIPS):
        for mode in ("independent", "chained"):
            ax.semilogy(range(2, args.frames + 1), curves[(clip.stem, mode)], label=mode)
        ax.set_title(f"{clip.name}, {args.size} px, {args.iterations} it/frame")
        ax.set_xlabel("frame")
    axes[0].set_ylabel("E_warp (frame t-1 -> t)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(args.out / "temporal.png", dpi=110)
    return md


def part_speed(args, command, machine) -> list[str]:

    preset = Settings(styles=(str(STYLE),), size=args.speed_size, scales=1)  # the balanced preset's frame iterations
    frames = load_frames(CLIPS[0], args.speed_size, args.speed_frames + 1)
    outs, secs, _ = chain_frames(preset, frames)
    chained_loss = float(np.mean(image_losses(preset, outs[1:], frames[1:])[0]))
    chained_sec = float(np.mean(secs[1:]))
    md = [f"## 2. Speed at equal loss (frames 2-{args.speed_frames + 1} of pan.mp4 at {args.speed_size} px)", "",
           f"{command} ({machine}). Loss = content + style + TV terms, no temporal term.", "",
           "| mode | iterations per frame | mean loss (no temporal term) | s / frame |", "|---|---|---|---|",
           f"| chained (balanced preset) | {preset.frame_iterations} | {chained_loss:.4f} | {chained_sec:.2f} |"]
    print(md[-1], flush=True)
    n, reached = preset.frame_iterations, None
    while n <= 1000:
        ind = dataclasses.replace(preset, iterations=n, independent=True, tolerance=0)
        outs_i, secs_i, _ = chain_frames(ind, frames[1:])
        loss_i = float(np.mean(image_losses(ind, outs_i, frames[1:])[0]))
        md.append(f"| independent | {n} | {loss_i:.4f} | {np.mean(secs_i):.2f} |")
        print(md[-1], flush=True)
        if loss_i <= chained_loss:
            reached = float(np.mean(secs_i))
            break
        n *= 2
    if reached:
        md += ["", f"Independent frames need {n} iterations to reach the chained loss: "
                   f"**{reached / chained_sec:.1f}x** the time per frame of the chain."]
    else:
        md += ["", f"Independent frames did not reach the chained loss within {n // 2} iterations: "
                   f"the chain is more than **{np.mean(secs_i) / chained_sec:.1f}x** faster."]

    return md


def part_drift(args, command, machine) -> list[str]:

    still = read_image(SAMPLES / "chelsea.png").rgb
    h, w = video_size(still.shape[1], still.shape[0], args.static_size)
    import cv2
    frame = to_u8(cv2.resize(still, (w, h), interpolation=cv2.INTER_AREA))
    static = Settings(styles=(str(STYLE),), size=args.static_size, scales=1, iterations=200)
    outs, _, _ = chain_frames(static, [frame] * args.static_frames)
    first, last = outs[0], outs[-1]
    _, (s_first, s_last) = image_losses(static, [first, last], [frame, frame])
    colour_change = np.abs(last.mean((0, 1)) - first.mean((0, 1))) / first.mean((0, 1))
    md = [f"## 3. Drift on a static shot ({args.static_frames} frames of chelsea.png at {args.static_size} px, "
          "balanced preset)", "",
           f"{command} ({machine}).", "", "| | first frame | last frame | change |", "|---|---|---|---|",
           f"| mean RGB (0-255) | {np.round(first.mean((0, 1)), 1).tolist()} | "
           f"{np.round(last.mean((0, 1)), 1).tolist()} | max {100 * colour_change.max():.2f}% |",
           f"| style loss | {s_first:.4f} | {s_last:.4f} | {100 * (s_last / s_first - 1):+.2f}% |"]
    print("\n".join(md[-4:]), flush=True)

    return md


def part_real(args, command, machine) -> list[str]:
    """Balanced preset on real footage, with the candidate causes of flicker as variants; the
    first frame is computed once and shared by the chained modes."""
    base = Settings(styles=(str(STYLE),), size=args.real_size)
    candidates = {"temporal": ("temporal weight x4",
                               dataclasses.replace(base, temporal_weight=4 * base.temporal_weight)),
                  "iterations": (f"{2 * base.frame_iterations // 3} frame iterations",
                                 dataclasses.replace(base, frame_iterations=2 * base.frame_iterations // 3)),
                  "noflow": ("no flow (unwarped warm start)", dataclasses.replace(base, flow=False))}
    modes = {"balanced (chained)": base,
             **dict(candidates[c] for c in args.real_variants.split(",") if c),
             "independent": dataclasses.replace(base, independent=True)}
    md = [f"## 4. Real footage, balanced preset at {args.real_size} px", "",
          f"{command} ({machine}); style starry_night.jpg; realshort.mp4's first {args.real_frames} "
          f"frames (independent: the first {args.real_independent_frames}), Sintel alley_2's 4. E_warp "
          "is the mean over frame pairs; loss = content + style + TV (no temporal term) over the "
          "frames after the first, against the balanced chain's. Strip: temporal_real.jpg (realshort: "
          "input, balanced chain, independent).", "",
          "| clip | mode | mean E_warp | x input's own | x independent | loss vs balanced | s / later frame |",
          "|---|---|---|---|---|---|---|"]
    strips = []
    clips = {"realshort.mp4": clip_frames("realshort", args.real_size, args.real_frames),
             "sintel alley_2": clip_frames("sintel", args.real_size, 4)}
    for name, frames in clips.items():
        floor = float(np.mean(warping_error(iter(frames), iter(frames))))
        first, _, _ = chain_frames(base, frames[:1])
        rows = {}
        for mode, settings in reversed(modes.items()):  # independent first: the others refer to it
            inputs = frames[:args.real_independent_frames] if settings.independent else frames
            outs, secs, _ = chain_frames(settings, inputs, None if settings.independent else {0: first[0]})
            e = float(np.mean(warping_error(iter(outs), iter(inputs))))
            loss = float(np.mean(image_losses(settings, outs[1:], inputs[1:])[0]))
            rows[mode] = (e, loss, float(np.mean(secs[1:])), outs)
        ind_e, balanced_loss = rows["independent"][0], rows["balanced (chained)"][1]
        for mode in modes:
            e, loss, sec, _ = rows[mode]
            md.append(f"| {name} | {mode} | {e:.5f} | {e / floor:.2f}x | {e / ind_e:.3f}x | "
                      f"{100 * (loss / balanced_loss - 1):+.1f}% | {sec:.1f} |")
            print(md[-1], flush=True)
        if name.startswith("realshort"):
            strips = [np.concatenate(shown[:args.real_independent_frames], axis=1)
                      for shown in (frames, rows["balanced (chained)"][3], rows["independent"][3])]
    import cv2
    cv2.imwrite(str(args.out / "temporal_real.jpg"),
                cv2.cvtColor(np.concatenate(strips, axis=0), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 88])
    return md


if __name__ == "__main__":
    main()
