"""GPU throughput of the optimisation step: frames/s by resolution, batch and precision.

Prints a markdown table and writes it to --out. Each cell times `--steps` optimiser iterations of
a batch of real frames (the sample clip, resized) after warm-up, on the real VGG19 weights, and
converts to frames/s at the balanced preset's iterations per warm-started frame. Achieved TFLOP/s
counts the conv FLOPs of one forward pass (to relu5_1) plus the input-gradient backward (the same
FLOPs again; weights are frozen, so no weight gradients), against the measured bf16 matmul rate.

    python bench/gpu.py --out docs/gpu.md            # on a CUDA machine
    python bench/gpu.py --smoke                       # tiny CPU run that checks the script

Where the time of one step goes: bench/gpu_profile.py. Each row is written as soon as it is
measured, so a run cut short by bench/gpu.sh's time limit keeps what it has.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from common import ROOT, STYLE, conv_flops, sample_batch, sync
from nstvid.pipeline.engine import Engine
from nstvid.pipeline.gatys import optimise
from nstvid.pipeline.settings import Settings
from nstvid.pipeline.style_targets import StyleSet


def matmul_rate(device: torch.device) -> float:
    """Measured dense bf16 matmul TFLOP/s (8192^3), the ceiling we compare against."""
    n = 8192 if device.type == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    reps = 10
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12


def bench_cell(size, batch, precision, device, steps, frame_iterations):
    settings = Settings(styles=(str(STYLE),), precision=precision, device=str(device), tolerance=0)
    engine = Engine.create(settings)
    w, h = size
    targets = StyleSet(engine, settings).targets((h, w))
    content = sample_batch(size, batch)
    init = content.clone()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        optimise(engine, settings, init, content, targets, iterations=2)  # warm-up: kernels, allocator
        sync(device)
        t = time.perf_counter()
        optimise(engine, settings, init, content, targets, iterations=steps)
        sync(device)
        per_iter = (time.perf_counter() - t) / steps
    except torch.OutOfMemoryError:
        return None
    # optimise() runs one extra objective at the end (no backward); count it as half a step.
    per_iter = per_iter * steps / (steps + 0.5)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else float("nan")
    fps = batch / (per_iter * frame_iterations)
    tflops = 2 * conv_flops(h, w) * batch / per_iter / 1e12
    return per_iter, fps, peak, tflops


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gpu.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sizes = [(128, 72)] if args.smoke else [(512, 288), (1280, 720)]
    batches = [1, 2] if args.smoke else [1, 4, 16]
    steps = 2 if args.smoke else args.steps
    frame_iterations = Settings().frame_iterations  # the balanced preset's, per warm-started frame
    rate = matmul_rate(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    lines = [f"# GPU benchmark ({name})", "",
             f"torch {torch.__version__}; measured dense bf16 matmul rate: {rate:.0f} TFLOP/s. "
             f"frames/s assume {frame_iterations} iterations per warm-started frame (balanced preset); "
             f"timed over {steps} iterations after 2 warm-up. fp32 convolutions use cuDNN's default "
             f"(TF32 allowed).", "",
             "| size | batch | precision | ms / iteration | frames/s | peak GiB | TFLOP/s | % of matmul rate |",
             "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    for size in sizes:
        for batch in batches:
            for precision in ("fp32", "bf16"):
                cell = bench_cell(size, batch, precision, device, steps, frame_iterations)
                if cell is None:
                    row = f"| {size[0]}x{size[1]} | {batch} | {precision} | out of memory | | | | |"
                else:
                    per_iter, fps, peak, tflops = cell
                    row = (f"| {size[0]}x{size[1]} | {batch} | {precision} | {per_iter * 1e3:.1f} | "
                           f"{fps:.2f} | {peak:.1f} | {tflops:.0f} | {100 * tflops / rate:.0f}% |")
                lines.append(row)
                print(row, flush=True)
                with open(args.out, "a") as f:
                    f.write(row + "\n")
                if device.type == "cuda":
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
