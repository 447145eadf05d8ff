"""Is decoding, flow, saving and encoding hidden behind the optimisation? (CPU)

    .venv/bin/python bench/pipeline.py        # writes docs/pipeline.md

For each setting, on the first --frames frames of the sample clip (with its audio), the real job
(stylise_video) runs with the producer/consumer overlap off (everything in line) and on (decode +
flow one window ahead on one thread, PNG saving + encoding behind on another), alternating,
--repeats times each. Per run: the wall time of the whole call (probe, work folder, encoder start,
audio mux included) against the time the same run spent optimising (the seconds its FrameDone
events report: Chain.run_within, no I/O), so each ratio comes from one run and machine noise cancels.
Also timed on their own: decode, flow planning, and saving + encoding, per frame.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import CLIP, ROOT, STYLE, private_cache
from nstvid.pipeline.frames import video_size
from nstvid.pipeline.media.video import VideoWriter, probe, read_frames, run_ffmpeg
from nstvid.pipeline.prepare import prepare
from nstvid.pipeline.progress import FrameDone
from nstvid.pipeline.settings import Settings, load
from nstvid.pipeline.video.orchestrator import stylise_video
from nstvid.pipeline.video.plan import plan_steps
from nstvid.pipeline.video.stream import stylise_frames
from nstvid.pipeline.video.workdir import WorkDir


def plan_batch_1(settings: Settings, frames) -> list:
    """The steps the real job runs at batch 1: each frame planned against the one before it."""
    steps, anchor = [], None
    for frame in frames:
        steps += plan_steps(settings, anchor, [frame])
        anchor = frame
    return steps


def side_costs(settings: Settings, clip: Path, frames, h: int, w: int, tmp: Path) -> dict[str, float]:
    """Seconds per frame of decoding, flow planning, and saving + encoding, each on its own."""
    info = probe(clip)
    t = time.perf_counter()
    decoded = list(read_frames(clip, size=(w, h), info=info))
    decode = (time.perf_counter() - t) / len(decoded)
    t = time.perf_counter()
    plan_batch_1(settings, frames)
    plan = (time.perf_counter() - t) / len(frames)
    work = WorkDir(tmp / "side.mp4", {"size": [h, w]})
    work.path.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with VideoWriter(tmp / "side.mp4", w, h, info.fps, audio_from=clip) as writer:
        for i, frame in enumerate(frames):
            work.save(i, frame)
            writer.write(frame)
    save = (time.perf_counter() - t) / len(frames)
    return {"decode": decode, "flow": plan, "save+encode": save}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--settings", default="fast@256,fast@512",
                        help="preset@size list")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "pipeline.md")
    args = parser.parse_args()
    private_cache()
    tmp = Path(tempfile.mkdtemp(prefix="nstvid-bench-pipeline-"))
    clip = tmp / "clip.mp4"
    run_ffmpeg(["-y", "-i", CLIP, "-frames:v", args.frames, "-c:v", "libx264", "-crf", "10",
                "-c:a", "aac", "-shortest", clip], path=CLIP)
    info = probe(clip)
    rows = []
    header = ("| setting | frames | in line: wall / optimising s/frame = ratio | overlapped: wall / "
              "optimising s/frame = ratio | decode ms/frame | flow ms/frame | save+encode ms/frame |")
    print(header, flush=True)
    for spec in args.settings.split(","):
        preset, size = spec.split("@")
        # The first frame's full optimisation is cut to 20 iterations at one scale: it is the same
        # in all three runs, and left long it would dilute the per-frame overhead being measured.
        settings, _ = load({"styles": (str(STYLE),), "size": int(size), "batch": 1, "iterations": 20,
                            "scales": 1}, preset=preset)
        prepared = prepare(settings)
        h, w = video_size(info.width, info.height, settings.size)
        frames = list(read_frames(clip, size=(w, h), info=info))
        prepared.styles.targets((h, w))  # style targets computed before any timing
        # One untimed warm-up frame so that both timed runs start with warm kernels and caches.
        for _ in stylise_frames(prepared, frames[:1], (h, w), overlap=False):
            pass
        ratios = {False: [], True: []}
        for _ in range(args.repeats):
            for overlap in (False, True):
                optimising = []

                def collect(event) -> None:
                    if isinstance(event, FrameDone):
                        optimising.append(event.seconds)

                t = time.perf_counter()
                stylise_video(prepared, clip, tmp / "out.mp4", overlap=overlap, progress=collect)
                wall = time.perf_counter() - t
                ratios[overlap].append((wall / len(frames), sum(optimising) / len(frames)))
        costs = side_costs(settings, clip, frames, h, w, tmp)

        def cell(runs) -> str:
            return ", ".join(f"{wall:.2f} / {opt:.2f} = **{wall / opt:.3f}**" for wall, opt in runs)

        row = (f"| {preset} {w}x{h} ({settings.frame_iterations} it/frame) | {len(frames)} | "
               f"{cell(ratios[False])} | {cell(ratios[True])} | "
               + " | ".join(f"{1e3 * v:.1f}" for v in costs.values()) + " |")
        print(row, flush=True)
        rows.append(row)
    lines = ["# Pipeline overlap (CPU)", "",
             f"`.venv/bin/python bench/pipeline.py {' '.join(sys.argv[1:])}`, one process, torch "
             f"{torch.__version__}, {torch.get_num_threads()} threads: the first {args.frames} frames of "
             "pan.mp4 (with audio), starry_night.jpg, batch 1. Ratio = wall time of the whole "
             "`stylise_video` call / the time the same run spent in the optimisation (its FrameDone "
             "seconds), per frame; runs alternate in line / overlapped. The first frame gets 20 "
             "iterations at one scale (the preset's frame iterations for the rest).", "", header,
             "|---" * 7 + "|", *rows, ""]
    args.out.write_text("\n".join(lines) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
