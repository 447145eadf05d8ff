"""--engine ray on a private local cluster: what a unit costs besides its optimisation, and how fast
the driver alone can go. Every part runs the production drivers (the folder job of remote.py, the
clip joiner of cluster/video.py) on the production pool; only the worker class differs.

  (a) overhead per unit, one real worker: the gap between a unit's result and the one before it
      (the driver's own work on the earlier result, dispatch, object transfer both ways, scheduling)
      minus the worker's own time on the unit, for 256 px images (one image per unit) and 512x288
      video segments (SEGMENT_FRAMES warm frames per call);
  (b) the driver's own limit: the same drivers with a pass-through worker (Cluster(worker=...), this
      bench only): files/s and frames/s it dispatches, receives and writes;
  (c) on paper, from (a) and (b): how many H200 workers one driver keeps busy at 720p.

    .venv/bin/python bench/cluster.py            # about 10 min on 2 CPU cores
    .venv/bin/python bench/cluster.py --image-units 3 --video-segments 1 --files 10 --frames 24 --no-write
                                                 # a quick check that it runs

Writes the tables into docs/cluster.md (the section after "## Measured").
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from common import ROOT, SAMPLES, STYLE, measured
from nstvid.pipeline.cluster.backend import RayBackend
from nstvid.pipeline.cluster.video import RayExecutor
from nstvid.pipeline.cluster.worker import Worker
from nstvid.pipeline.folder.run import run_folder
from nstvid.pipeline.media.video import VideoWriter, run_ffmpeg
from nstvid.pipeline.prepare import prepare
from nstvid.pipeline.progress import NEVER_STOP, FileDone, FrameDone, ignore
from nstvid.pipeline.settings import RunOptions, load
from nstvid.pipeline.video.clip import open_clip, scan_ranges
from nstvid.pipeline.video.orchestrator import stylise_clip
from nstvid.pipeline.video.segment import SegmentOutput

DOC = ROOT / "docs" / "cluster.md"
PHOTO = SAMPLES / "chelsea.png"  # one picture: its style targets are computed once, before the first unit


class PassThrough(Worker):
    """The bench's stand-in for the optimisation: images come back as they went; a segment is
    decoded from its own range and encoded again as it was, as a real worker does around the
    optimisation, with its raw frames."""

    def images(self, sent, targets, files, ext, batch):
        return self.identity, [("done", data, 0.0, 0.0) for _, data in files]

    def segment(self, sent, targets, clip, source, task, key, suffix, events):
        segment = task.segment
        h, w = key["size"]
        raw_wanted, raw = set(segment.raw_indices()), {}
        box, token = events
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"segment{suffix}"
            writer = VideoWriter(path, w, h, clip.info.fps) if segment.encoded else None
            with writer if writer is not None else contextlib.nullcontext():
                for index, frame in zip(range(segment.first, segment.stop),
                                        clip.part(segment.first, segment.stop).frames((w, h))):
                    if writer is not None and segment.encode_from <= index < segment.encode_to:
                        writer.write(frame)
                    if index in raw_wanted:
                        raw[index] = frame
                    box.put.remote((token, segment.name, index, 0.0, 0.0))  # progress, as a real worker sends it
            data = path.read_bytes() if writer is not None else None
        return self.identity, data, SegmentOutput(segment, None, raw)


def _settings(size: int, iterations: int, frame_iterations: int):
    settings, _ = load({"styles": (str(STYLE),), "size": size, "scales": 1, "iterations": iterations,
                        "frame_iterations": frame_iterations, "device": "cpu"})
    return settings


def _options(workers: int) -> RunOptions:
    return RunOptions(engine="ray", ray_address="local", ray_workers=workers)


def _photos(folder: Path, count: int) -> Path:
    folder.mkdir()
    for k in range(count):
        shutil.copy(PHOTO, folder / f"p{k:04d}.png")
    return folder


def _clip(path: Path, frames: int, scale: str) -> Path:
    run_ffmpeg(["-y", "-stream_loop", "-1", "-i", str(SAMPLES / "pan.mp4"), "-frames:v", str(frames),
                "-vf", f"scale={scale}", "-c:v", "libx264", "-crf", "18", "-an", str(path)], path=path)
    return path


def overhead_images(size: int, iterations: int, units: int, tmp: Path) -> dict:
    """units + 1 images through the folder job on one worker; the first result only starts the clock."""
    settings = _settings(size, iterations, 1)
    backend = RayBackend(_options(1), settings, ignore)
    done: list[tuple[float, float]] = []  # (when the driver had recorded it, the worker's seconds)
    try:
        run_folder(_photos(tmp / "a_photos", units + 1), tmp / "a_out", settings, _options(1), backend,
                   lambda e: done.append((time.perf_counter(), e.seconds)) if isinstance(e, FileDone) else None)
    finally:
        backend.close()
    return _summary([(t - t0, work) for (t0, _), (t, work) in zip(done, done[1:])])


def overhead_video(frame_iterations: int, segments: int, segment_frames: int, tmp: Path) -> dict:
    """segments + 1 segments of a 512x288 clip on one worker (one piece); the first, which holds the
    clip's cold first frame, only starts the clock."""
    settings = dataclasses.replace(_settings(512, 1, frame_iterations), segment_frames=segment_frames)
    clip = _clip(tmp / "a_clip.mp4", (segments + 1) * segment_frames, "512:288")
    backend = RayBackend(_options(1), settings, ignore)
    done: list[tuple[float, float]] = []  # per frame, in clip order: (when it came back, the worker's seconds)
    try:
        stylise_clip(backend.video_executor(lambda: prepare(settings), NEVER_STOP), settings, clip,
                     tmp / "a_out.mp4", progress=lambda e: done.append((time.perf_counter(), e.seconds))
                     if isinstance(e, FrameDone) else None)
    finally:
        backend.close()
    per_segment = [done[k:k + segment_frames] for k in range(0, len(done), segment_frames)]
    return _summary([(segment[-1][0] - before[-1][0], sum(s for _, s in segment))
                     for before, segment in zip(per_segment, per_segment[1:])])


def _summary(rows: list[tuple[float, float]]) -> dict:
    walls, works = [w for w, _ in rows], [k for _, k in rows]
    over = [w - k for w, k in rows]
    return {"units": len(rows), "wall": statistics.median(walls), "work": statistics.median(works),
            "overhead": statistics.median(over), "share": statistics.median(o / k for o, k in zip(over, works))}


class PeakMemory:
    """The most this process's resident memory grew above where it stood at the start, sampled
    every 20 ms in a thread (ru_maxrss holds the whole process's peak, imports included)."""

    def __enter__(self):
        self.start = self.peak = _rss()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 1e6


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def driver_limit(workers: int, files: int, frames: int, short: int, size: int, tmp: Path) -> dict:
    """The folder and clip drivers against pass-through workers: files/s, then per video run the
    driver's CPU per frame (its own, its ffmpeg children's) and its memory's growth."""
    settings = _settings(size, 1, 1)
    backend = RayBackend(_options(workers), settings, ignore, worker=PassThrough)
    cluster = backend.cluster
    try:
        stamps: list[float] = []
        run_folder(_photos(tmp / "b_photos", files), tmp / "b_out", settings, _options(workers), backend,
                   lambda e: stamps.append(time.perf_counter()) if isinstance(e, FileDone) else None)
        files_per_s = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        film = _clip(tmp / "b_film.mp4", frames, "1280:720")
        clip = _clip(tmp / "b_clip.mp4", short, "1280:720")
        styles = prepare(settings).styles
        pool = cluster.pool(styles)
        rows = []
        # In this order: the film's memory growth is what it needs beyond the short clip's run.
        for name, long_side, path, count in (("1280x720", 1280, clip, short), ("1280x720", 1280, film, frames),
                                             ("512x288", 512, film, frames)):
            with PeakMemory() as memory:
                _, wall, own, children = measured(lambda: stylise_clip(
                    RayExecutor(pool, styles), _settings(long_side, 1, 1), path, tmp / f"b_out{long_side}.mp4"))
            rows.append({"video": name, "frames": count, "split": len(scan_ranges(open_clip(path), workers)) > 1,
                         "fps": count / wall, "own_ms": 1000 * own / count, "ffmpeg_ms": 1000 * children / count,
                         "memory_mb": memory.growth_mb})
    finally:
        backend.close()
    return {"files_per_s": files_per_s, "video": rows}


def _overhead_table(args, images: dict, video: dict) -> list[str]:
    return [
        "| unit | units | worker time (s) | wall (s) | overhead (s) | overhead / worker time |",
        "|---|---|---|---|---|---|",
        f"| 256 px image, {args.iterations} iterations | {images['units']} | {images['work']:.3f} | "
        f"{images['wall']:.3f} | {images['overhead']:.3f} | {images['share']:.1%} |",
        f"| 512x288 segment of {args.segment_frames} warm frames, {args.frame_iterations} iterations each | "
        f"{video['units']} | {video['work']:.3f} | {video['wall']:.3f} | {video['overhead']:.3f} | "
        f"{video['share']:.1%} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="pass-through workers (part b)")
    parser.add_argument("--image-units", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=20, help="per 256 px image (part a)")
    parser.add_argument("--video-segments", type=int, default=2)
    parser.add_argument("--segment-frames", type=int, default=24,
                        help="part a only (the default, 240, would take 20 minutes a segment on a CPU)")
    parser.add_argument("--driver-only", action="store_true", help="part (b) and (c) alone")
    parser.add_argument("--frame-iterations", type=int, default=2, help="per 512x288 frame (part a)")
    parser.add_argument("--files", type=int, default=200, help="part b")
    parser.add_argument("--frames", type=int, default=4800,
                        help="part b: a film's clip, long enough for the scan to be split over the workers")
    parser.add_argument("--short-frames", type=int, default=960, help="part b: a clip scanned in the driver")
    parser.add_argument("--h200-fps", type=float, default=1.0,
                        help="one H200 worker's frames/s at 720p (issue 13: about 1 today, 10 the goal)")
    parser.add_argument("--no-write", action="store_true", help=f"print the tables, leave {DOC.name} as it is")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the driver's own work; the workers take the cores
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="nstvid-bench-"))
    try:
        images = video = None
        if not args.driver_only:
            images = overhead_images(256, args.iterations, args.image_units, tmp)
            video = overhead_video(args.frame_iterations, args.video_segments, args.segment_frames, tmp)
        limit = driver_limit(args.workers, args.files, args.frames, args.short_frames, 256, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        "## Measured",
        "",
        f"`.venv/bin/python bench/cluster.py` ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, a private Ray cluster on this machine: one CPU worker for (a), "
        f"{args.workers} pass-through workers for (b); {time.time() - t0:.0f} s). Medians per unit.",
        "",
        "### (a) Overhead per unit",
        "",
        "Overhead = the gap between a unit's result and the one before it on the one worker (the driver's "
        "own work on the earlier result: for images the atomic write and the manifest, for video storing "
        "the segment; then dispatch, transfer both ways, scheduling) minus the worker's time on the unit "
        "(for images decode, optimisation, encode; for video the optimisation passes only: its decode, "
        "flow, planning and encode on the worker count as overhead here).",
        "",
        *(["Not run this time (`--driver-only`)."] if args.driver_only else _overhead_table(args, images, video)),
        "",
        "### (b) The driver's own limit (pass-through workers, this bench only)",
        "",
        f"Files: {args.files} 256 px PNGs (dispatch, receive, atomic write, manifest, report): "
        f"{limit['files_per_s']:.1f} files/s. Video: clips of one shot (so 2 pieces and one seam), the driver's "
        "CPU time measured with getrusage, apart from the workers (other processes): its own process (plan, "
        "dispatch, per-frame progress events, segments stored with their sha256, raw frames kept, the seam's "
        "blend, Ray's client threads) and its ffmpeg children (a scan in the driver, the seam's encode, the "
        "stream-copy join). The scan is split over the workers from 2 ranges of 2,000 frames (video/clip.py), "
        "as it is for a film; a shorter clip is scanned in the driver. Memory: how far the driver's resident "
        "memory rose during a clip above where it stood before it (sampled every 20 ms); the rows ran in this "
        "order, so the film's figure is what it needed beyond what the short clip's run left allocated. "
        "Wall frames/s here is the two "
        "pass-through workers' own decode and encode on this machine's cores, not the driver's limit.",
        "",
        "| video | frames | scan | driver CPU, own (ms/frame) | driver's ffmpeg (ms/frame) | driver limit (frames/s) "
        "| driver memory growth (MB) | wall (frames/s) |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {r['video']} | {r['frames']} | {'split' if r['split'] else 'in the driver'} | {r['own_ms']:.2f} | "
          f"{r['ffmpeg_ms']:.2f} | {1000 / (r['own_ms'] + r['ffmpeg_ms']):.0f} | {r['memory_mb']:.0f} | "
          f"{r['fps']:.1f} |" for r in limit["video"]),
        "",
        "Before issue 23 the driver decoded every frame, saved and loaded it as a PNG and encoded it: 6.8 "
        "frames/s at 1280x720 and 32.9 at 512x288 by the same bench (about 150 ms per 720p frame).",
        "",
        "### (c) On paper: H200 workers per driver at 720p",
        "",
    ]
    film = limit["video"][1]  # the 720p film
    driver_fps = 1000 / (film["own_ms"] + film["ffmpeg_ms"])
    for fps in sorted({args.h200_fps, 10.0}):
        lines.append(f"- At {fps:g} frame/s per H200 worker, one driver keeps about {driver_fps / fps:.0f} workers "
                     f"busy ({driver_fps:.0f} frames/s of a {film['frames']}-frame 720p clip / {fps:g}).")
    lines += ["- What the driver does per segment (store the file, hash it, record it, keep its last frame) and "
              "once per clip (the join, each seam) is what is left; per frame it relays a progress event. A folder "
              f"of images costs the driver a write per file: {limit['files_per_s']:.0f} files/s.", ""]
    text = "\n".join(lines)
    print(text)
    if args.no_write:
        return
    doc = DOC.read_text() if DOC.exists() else "# nstvid on a cluster\n\n"
    head = doc.split("## Measured")[0].rstrip() + "\n\n"
    DOC.write_text(head + text)
    print(f"wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
