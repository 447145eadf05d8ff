"""Folder-job bookkeeping overhead: how long a rerun over finished files takes per file.

    .venv/bin/python bench/folder.py [--files 1000] [--write docs/benchmarks_folder.md]

1. Makes N small inputs (16x16 crops of sample_media/chelsea.png, PNG, in 10 sub-folders).
2. Runs the real `nstvid` once on them with --iterations 0 (the content resized, no optimisation),
   checks that those outputs are the content, and times that first run.
3. Times a rerun where every file is already done (all skipped), through the real command and
   in-process (run_folder, no interpreter/torch start-up), and an empty folder for the fixed cost.
Per-file overhead = rerun wall time / N (start-up included, so an upper bound); the in-process time
shows the job's own share.  Target: under 50 ms per file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from common import SAMPLES, STYLE

CHELSEA = SAMPLES / "chelsea.png"
SETTINGS = ["--size", "16", "--scales", "1", "--iterations", "0", "--precision", "fp32"]


def exe() -> str:
    path = Path(sys.executable).with_name("nstvid")
    return str(path) if path.exists() else shutil.which("nstvid") or "nstvid"


def make_inputs(folder: Path, n: int) -> None:
    img = cv2.imread(str(CHELSEA))
    rng = np.random.default_rng(0)
    for i in range(n):
        y, x = rng.integers(0, img.shape[0] - 16), rng.integers(0, img.shape[1] - 16)
        sub = folder / f"roll{i % 10:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"img{i:05d}.png"), img[y:y + 16, x:x + 16])


def run(env, *args) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run([exe(), *map(str, args)], capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--write", type=Path, default=None, help="write the results as Markdown here")
    args = ap.parse_args()
    n = args.files

    with tempfile.TemporaryDirectory(prefix="nstvid-bench-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "NSTVID_CACHE_DIR": str(tmp / "cache")}
        src, out, empty = tmp / "in", tmp / "out", tmp / "empty"
        make_inputs(src, n)
        empty.mkdir()
        common = ["--style", STYLE, *SETTINGS, "--log-format", "plain", "-q"]

        first_s, r = run(env, src, "-o", out, "--report", tmp / "first.json", *common)
        assert r.returncode == 0, r.stderr
        first = json.loads((tmp / "first.json").read_text())
        assert first["done"] == n, first["done"]

        # --iterations 0 must write the content itself (resized to --size, here the same size).
        worst = 0
        for rec in first["files"][:50]:
            a = cv2.imread(rec["path"]).astype(int)
            b = cv2.imread(rec["output"]).astype(int)
            assert a.shape == b.shape, (a.shape, b.shape)
            worst = max(worst, int(np.abs(a - b).max()))

        rerun_s, r = run(env, src, "-o", out, "--report", tmp / "rerun.json", *common)
        assert r.returncode == 0, r.stderr
        rerun = json.loads((tmp / "rerun.json").read_text())
        assert rerun["done"] == 0 and rerun["skipped"] == n, (rerun["done"], rerun["skipped"])

        empty_s, r = run(env, empty, "-o", tmp / "out-empty", *common)
        assert r.returncode == 0, r.stderr

        dry_s, r = run(env, src, "-o", out, *common, "--dry-run")
        assert r.returncode == 0, r.stderr

        # In process: the job alone, no interpreter or torch start-up.
        from nstvid.pipeline.backend import LocalBackend
        from nstvid.pipeline.folder.run import run_folder
        from nstvid.pipeline.settings import RunOptions, load

        settings, _ = load({"styles": (str(STYLE),), "size": 16, "scales": 1, "iterations": 0,
                            "precision": "fp32"})
        os.environ["NSTVID_CACHE_DIR"] = env["NSTVID_CACHE_DIR"]
        inproc = []
        for _ in range(3):
            t0 = time.perf_counter()
            summary = run_folder(src, out, settings, RunOptions(), LocalBackend(settings), lambda e: None)
            inproc.append(time.perf_counter() - t0)
            assert summary.skipped == n and summary.done == 0
        # Touched inputs (new mtime, same content): each one is hashed once, then skipped.
        for p in src.rglob("*.png"):
            os.utime(p)
        t0 = time.perf_counter()
        summary = run_folder(src, out, settings, RunOptions(), LocalBackend(settings), lambda e: None)
        touched_s = time.perf_counter() - t0
        assert summary.skipped == n
        manifest_kb = (out / ".nstvid-manifest.json").stat().st_size / 1024

    per_file_cli = rerun_s / n * 1000  # start-up included: an upper bound
    rows = [
        ("first run, --iterations 0 (real work)", f"{first_s:.1f} s", f"{first_s / n * 1000:.1f}"),
        ("empty folder (start-up only)", f"{empty_s:.2f} s", "-"),
        ("rerun, all skipped (nstvid command, start-up included)", f"{rerun_s:.2f} s", f"{per_file_cli:.2f}"),
        ("--dry-run over finished files (start-up included)", f"{dry_s:.2f} s", f"{dry_s / n * 1000:.2f}"),
        ("rerun, all skipped (run_folder in process, best of 3)", f"{min(inproc):.3f} s",
         f"{min(inproc) / n * 1000:.2f}"),
        ("rerun after touching every input (hash, then skip)", f"{touched_s:.3f} s", f"{touched_s / n * 1000:.2f}"),
    ]
    table = ["| run | wall | ms per file |", "| --- | ---: | ---: |"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    verdict = "meets" if per_file_cli < 50 else "MISSES"
    text = "\n".join([
        "# Folder job: per-file overhead of a rerun",
        "",
        f"`bench/folder.py --files {n}`: {n} inputs (16x16 PNG crops of chelsea.png in 10 folders), "
        "processed once with `--size 16 --scales 1 --iterations 0`, then rerun with every file done.",
        f"Machine: {machine}. Manifest: {manifest_kb:.0f} KiB.",
        "",
        *table,
        "",
        f"Rerun overhead {per_file_cli:.2f} ms per file through the command, start-up included "
        f"({min(inproc) / n * 1000:.2f} ms in the job itself): {verdict} the 50 ms target.",
        f"`--iterations 0` writes the content unchanged (largest pixel difference from the input over "
        f"50 files: {worst}).",
        "",
    ])
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)


if __name__ == "__main__":
    main()
