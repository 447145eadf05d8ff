"""How a clip reaches Ray workers that cannot read the driver's path (issue 23, item 3): the whole
file put once into the object store (what cluster/video.py does), against a stream-copied slice
per segment that covers its range and the frame before it (the anchor's input), cut by ffmpeg
on the driver. Measured on the driver alone, which is what a cluster is limited by: its own CPU
and its ffmpeg children's (getrusage), and the bytes it puts, on a private local Ray instance.
The slices are cut and put but not decoded by workers: this compares what each way costs the
driver, and the slice transport is not built.

    .venv/bin/python bench/transport.py [--frames 4800] [--keyint 250]   # about 2 minutes on 2 cores

Writes docs/transport.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
from pathlib import Path

from common import ROOT, SAMPLES, measured
from nstvid.pipeline.cluster.connect import connect
from nstvid.pipeline.media.video import probe, run_ffmpeg
from nstvid.pipeline.settings import RunOptions

DOC = ROOT / "docs" / "transport.md"
SEGMENT = 240  # frames (Settings.segment_frames' default)


def _film(path: Path, frames: int, keyint: int) -> Path:
    """The sample pan looped to `frames` frames at 1280x720, x264 crf 18 with a keyframe every
    `keyint` frames (x264's default is 250; cameras often write one a second or two)."""
    run_ffmpeg(["-y", "-stream_loop", "-1", "-i", str(SAMPLES / "pan.mp4"), "-frames:v", str(frames), "-vf",
                "scale=1280:720", "-c:v", "libx264", "-crf", "18", "-g", str(keyint), "-an", str(path)], path=path)
    return path


def _slices(ray, film: Path, frames: int, fps: float, folder: Path) -> int:
    """Cut and put a slice per segment: from the keyframe at or before the anchor's frame (ffmpeg
    seeks there by itself when copying) to the segment's end. Returns the bytes put."""
    sent = 0
    refs = []
    for first in range(0, frames, SEGMENT):
        stop = min(first + SEGMENT, frames)
        start = max(first - 1, 0) / fps
        out = folder / f"slice_{first:06d}.mp4"
        run_ffmpeg(["-y", "-ss", f"{start:.6f}", "-i", str(film), "-t", f"{(stop / fps) - start:.6f}", "-c", "copy",
                    "-an", str(out)], path=out)
        data = out.read_bytes()
        sent += len(data)
        refs.append(ray.put(data))
        out.unlink()
    del refs
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4800)
    parser.add_argument("--keyint", type=int, nargs="+", default=[250, 50])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nstvid-bench-transport-"))
    ray = connect(RunOptions(engine="ray", ray_address="local", ray_workers=1))
    rows = []
    try:
        for keyint in args.keyint:
            film = _film(folder / f"film_g{keyint}.mp4", args.frames, keyint)
            info = probe(film)
            size = film.stat().st_size
            _, _, own, children = measured(lambda: ray.put(film.read_bytes()))
            rows.append((keyint, "the file once", own, children, size, size))
            sent, _, own, children = measured(
                lambda: _slices(ray, film, args.frames, float(info.fps), folder))
            rows.append((keyint, f"a slice per {SEGMENT}-frame segment", own, children, sent, size))
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    lines = [
        "# Sending the input to the workers: the file once, or a slice per segment",
        "",
        f"`.venv/bin/python bench/transport.py --frames {args.frames}` ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, a private Ray instance on this machine; one run). A {args.frames}-frame 1280x720 "
        "clip (the sample pan looped, x264 crf 18), with x264's default keyframe interval and with one every "
        "2 s. The driver's CPU per frame of the clip, its own (read, put into the object store) and its ffmpeg "
        "children's (the stream copies), and the bytes it puts, against the file's size. A slice starts at the "
        "keyframe at or before the segment's anchor (a stream copy cannot start between keyframes) and ends "
        "with the segment.",
        "",
        "| keyframe every | transport | driver CPU, own (ms/frame) | driver's ffmpeg (ms/frame) | bytes put "
        "(x the file) |",
        "|---|---|---|---|---|",
        *(f"| {keyint} frames | {name} | {1000 * own / args.frames:.3f} | {1000 * children / args.frames:.3f} | "
          f"{sent / size:.2f} |" for keyint, name, own, children, sent, size in rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        DOC.write_text(text)


if __name__ == "__main__":
    main()
