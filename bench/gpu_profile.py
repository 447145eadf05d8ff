"""Where a 720p optimisation step spends its time on a GPU, one section at a time.

    python bench/gpu_profile.py --section convs --out docs/gpu_profile.md   # on a CUDA machine
    python bench/gpu_profile.py --section all --smoke --out /tmp/p.md       # tiny CPU run of every part

Sections (bench/gpu.sh runs each under a timeout of its own; each appends its table to --out as
soon as it is measured, so a section that runs out of time costs only itself):
  convs     per conv layer: forward and input-gradient ms and TFLOP/s, batch 1 and 4, cuDNN
            autotuning (benchmark) on/off, channels-last on/off
  grams     the five style Grams, forward + backward: fp32, TF32, bf16 -> fp32 (tensor cores), and
            split-K, at batch 1, 2 and 4
  profile   torch.profiler over whole iterations of the real optimiser: GPU time by kind (conv,
            gemm, pooling, elementwise) and by phase (the objective, its backward, the L-BFGS step),
            kernels and host synchronisations per iteration, GPU busy fraction
  ablation  ms per iteration of the real optimiser: eager, a replayed CUDA graph
            (NSTVID_CUDA_GRAPHS=1), --compile; batch 1 and 4
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import ROOT, STYLE, conv_shapes, sample_batch, sync
from nstvid.pipeline.cuda_graphs import CUDA_GRAPHS_ENV
from nstvid.pipeline.engine import Engine
from nstvid.pipeline.gatys import optimise
from nstvid.pipeline.losses import gram_cuda
from nstvid.pipeline.settings import Settings
from nstvid.pipeline.style_targets import StyleSet


def timed(fn, device: torch.device, reps: int) -> float:
    """Seconds per call of fn, after two warm-up calls."""
    for _ in range(2):
        fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - t) / reps


def section_convs(device, dtype, size, reps) -> list[str]:
    w, h = size
    rows = ["## Convolutions, per layer", "",
            f"{w}x{h}, {dtype_name(dtype)}; forward and input gradient (weights frozen: no weight "
            "gradient), ms per call and TFLOP/s (2 FLOP per multiply-add).", "",
            "| layer | shape | batch | cuDNN benchmark | channels-last | fwd ms | fwd TFLOP/s | "
            "input-grad ms | input-grad TFLOP/s |", "|---|---|---|---|---|---|---|---|---|"]
    emit(rows)
    for name, cin, cout, lh, lw in conv_shapes(h, w):
        weight = torch.randn(cout, cin, 3, 3, device=device, dtype=dtype) * 0.05
        flops_one = 2 * cin * cout * 9 * lh * lw
        for batch in (1, 4):
            for bench in (True, False):
                for cl in (True, False):
                    torch.backends.cudnn.benchmark = bench
                    fmt = torch.channels_last if cl else torch.contiguous_format
                    x = torch.randn(batch, cin, lh, lw, device=device, dtype=dtype).contiguous(memory_format=fmt)
                    wt = weight.contiguous(memory_format=fmt)
                    forward = timed(lambda: F.conv2d(x, wt, padding=1), device, reps)
                    xg = x.detach().requires_grad_(True)
                    out = F.conv2d(xg, wt, padding=1)
                    grad_out = torch.ones_like(out)
                    backward = timed(lambda: torch.autograd.grad(out, xg, grad_out, retain_graph=True),
                                     device, reps)
                    flops = flops_one * batch
                    emit([f"| {name} | {cin}->{cout} {lw}x{lh} | {batch} | {'on' if bench else 'off'} | "
                          f"{'yes' if cl else 'no'} | {forward * 1e3:.3f} | {flops / forward / 1e12:.1f} | "
                          f"{backward * 1e3:.3f} | {flops / backward / 1e12:.1f} |"], rows)
    torch.backends.cudnn.benchmark = True
    return rows


def section_grams(device, dtype, size, reps) -> list[str]:
    w, h = size
    rows = ["## Grams (the five style layers, forward + backward)", "",
            f"{w}x{h}; ms for all five layers per call. fp32: features cast to fp32, strict fp32 "
            "matmul; TF32: the same on tensor cores; bf16 -> fp32: bf16 features, fp32 accumulation "
            "and output (bmm out_dtype; what the engine runs on CUDA with bf16); split-K: each Gram "
            "cut along H*W into pieces (losses.gram_splits) and summed.", "",
            "| batch | fp32 | TF32 | bf16 -> fp32 | bf16 -> fp32, split-K | TF32, split-K |",
            "|---|---|---|---|---|---|"]
    emit(rows)
    # relu1_1 .. relu5_1 are the outputs of conv1_1 .. conv5_1
    layers = [(cout, lh, lw) for name, _, cout, lh, lw in conv_shapes(h, w) if name.endswith("_1")]
    for batch in (1, 2, 4):
        feats = [torch.randn(batch, c, lh, lw, device=device, dtype=dtype)
                 .contiguous(memory_format=torch.channels_last).requires_grad_(True) for c, lh, lw in layers]
        cells = []
        for precision, low, split in (("highest", False, False), ("high", False, False), ("high", True, False),
                                      ("high", True, True), ("high", False, True)):
            torch.set_float32_matmul_precision(precision)

            def run():
                total = 0
                for f in feats:
                    x = f if low else f.float()
                    total = total + gram_cuda(x, splits=None if split else 1).square().sum()
                torch.autograd.grad(total, feats)

            cells.append(f"{timed(run, device, reps) * 1e3:.3f}")
        emit([f"| {batch} | " + " | ".join(cells) + " |"], rows)
    torch.set_float32_matmul_precision("high" if device.type == "cuda" else "highest")
    return rows


KINDS = [("conv", r"conv|cudnn|implicit|xmma|winograd|fprop|dgrad|nhwc|nchw"),
         ("gemm", r"gemm|cutlass|bmm|matmul|sm\d+_xmma_gemm"),
         ("pooling", r"pool"),
         ("elementwise / other", r".")]


def section_profile(device, dtype, size, reps) -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    w, h = size
    engine, settings, targets, content = setup(device, dtype, size, 1)
    optimise(engine, settings, content.clone(), content, targets, iterations=3)  # warm-up
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    t = time.perf_counter()
    with profile(activities=activities) as prof:
        optimise(engine, settings, content.clone(), content, targets, iterations=reps)
        sync(device)
    wall = time.perf_counter() - t
    events = prof.events()
    kernels = [e for e in events if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA]
    by_kind: dict[str, float] = {k: 0.0 for k, _ in KINDS}
    for k in kernels:
        kind = next(name for name, pattern in KINDS if re.search(pattern, k.name, re.I))
        by_kind[kind] += k.device_time
    busy = merged_busy(kernels) / 1e6
    syncs = sum(1 for e in events if re.search(r"Synchronize|cudaMemcpy(?!Async)|DtoH", e.name))
    phases = {e.key: e.device_time_total for e in prof.key_averages() if e.key.startswith("nstvid.")}
    kernel_total = sum(by_kind.values()) or 1.0
    rows = ["## Profile of whole iterations", "",
            f"{w}x{h}, batch 1, {dtype_name(dtype)}, {reps} iterations of the real optimiser "
            f"(plus its final objective), {wall * 1e3 / reps:.2f} ms wall per iteration.", "",
            f"- kernels per iteration: {len(kernels) / reps:.0f}; host synchronisations per iteration: "
            f"{syncs / reps:.2f}; GPU busy {100 * busy / wall:.0f}% of the wall time",
            "- GPU time by kind: " + ", ".join(f"{k} {100 * v / kernel_total:.0f}%" for k, v in by_kind.items()),
            "- GPU time by phase (ms per iteration): " + ", ".join(
                f"{k.removeprefix('nstvid.')} {v / 1e3 / reps:.2f}" for k, v in sorted(phases.items())), ""]
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    rows += ["```", prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=60), "```"]
    emit(rows)
    return rows


def merged_busy(kernels) -> float:
    """Microseconds in which at least one kernel ran."""
    spans = sorted((k.time_range.start, k.time_range.end) for k in kernels)
    busy, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop <= end:
            continue
        busy += stop - max(start, end)
        end = stop
    return busy


def section_ablation(device, dtype, size, reps, modes=("eager", "graph", "compile")) -> list[str]:
    w, h = size
    rows = ["## Eager, CUDA graph, compiled", "",
            f"{w}x{h}, {dtype_name(dtype)}; ms per iteration of the real optimiser over {reps} iterations "
            "(after a pass of 5 that compiles, captures and autotunes). Compiling comes last: it may "
            "run out of the section's time.", "", "| batch | mode | ms / iteration | note |", "|---|---|---|---|"]
    emit(rows)
    for mode, batch in [(m, b) for m in modes for b in (1, 4)]:
        os.environ[CUDA_GRAPHS_ENV] = "1" if mode == "graph" else ""
        try:
            engine, settings, targets, content = setup(device, dtype, size, batch, compile=mode == "compile")
            optimise(engine, settings, content.clone(), content, targets, iterations=5)
            per = timed(lambda: optimise(engine, settings, content.clone(), content, targets, iterations=reps),
                        device, 1) / (reps + 0.5)
            fell = [m.text for m in engine.notices if m.level == "warning"]
            emit([f"| {batch} | {mode} | {per * 1e3:.2f} | {fell[0] if fell else ''} |"], rows)
        except torch.OutOfMemoryError:
            emit([f"| {batch} | {mode} | out of memory | |"], rows)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    os.environ[CUDA_GRAPHS_ENV] = ""
    return rows


def setup(device, dtype, size, batch, compile: bool = False):
    settings = Settings(styles=(str(STYLE),), precision=dtype_name(dtype), device=str(device), tolerance=0,
                        compile=compile)
    engine = Engine.create(settings)
    w, h = size
    return engine, settings, StyleSet(engine, settings).targets((h, w)), sample_batch(size, batch).to(device)


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]


OUT: Path | None = None


def emit(lines: list[str], into: list[str] | None = None) -> None:
    """Print lines and append them to --out now (a section cut short keeps what it measured)."""
    if into is not None:
        into += lines
    print("\n".join(lines), flush=True)
    if OUT is not None:
        with open(OUT, "a") as f:
            f.write("\n".join(lines) + "\n")


SECTIONS = {"convs": section_convs, "grams": section_grams, "profile": section_profile,
            "ablation": section_ablation}


def main() -> None:
    global OUT
    parser = argparse.ArgumentParser()
    parser.add_argument("--section", choices=[*SECTIONS, "all"], default="all")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gpu_profile.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, fp32, on any device")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    os.environ.setdefault("NSTVID_CACHE_DIR", "/tmp/nstvid-bench-cache")
    size, reps = ((64, 36), 2) if args.smoke else ((1280, 720), 10)
    dtype = torch.float32 if args.smoke else torch.bfloat16
    OUT = args.out
    OUT.parent.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    emit([f"<!-- {name}, torch {torch.__version__}: `python bench/gpu_profile.py {' '.join(sys.argv[1:])}` -->"])
    for section in SECTIONS if args.section == "all" else [args.section]:
        if section == "ablation" and args.smoke:  # compiling takes minutes on a CPU
            section_ablation(device, dtype, size, reps, modes=("eager", "graph"))
        else:
            SECTIONS[section](device, dtype, size, reps)
        emit([""])


if __name__ == "__main__":
    main()
