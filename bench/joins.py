"""What a segment join costs in flicker, on every real clip in ../shared/media/video: the clip's
first 36 frames at 512 px, encoded once and as 3 segments of 12 joined by the stream copy the
orchestrator uses (media.video.VideoWriter.join), E_warp per pair (flow.warping_error, the input's
flow) around each join against the same pairs of the one encode. No stylisation: this is the
encoder's pulse alone, the part of a join that is the same for every look (a chain continues across
a join: tests/test_segments.py). Writes docs/joins.md.

    python bench/joins.py [--size 512] [--frames 36] [--segment 12]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from common import ROOT, SHARED
from nstvid.pipeline.flow import warping_error
from nstvid.pipeline.frames import video_size
from nstvid.pipeline.media.images import Picture, write_image
from nstvid.pipeline.media.video import VideoWriter, probe, read_frames, run_ffmpeg


def encode(path: Path, frames: list[np.ndarray], fps, segment: int | None) -> Path:
    h, w = frames[0].shape[:2]
    if segment is None:
        with VideoWriter(path, w, h, fps) as writer:
            for frame in frames:
                writer.write(frame)
        return path
    parts = []
    for k in range(0, len(frames), segment):
        part = path.with_name(f"{path.stem}_{k:04d}.mp4")
        with VideoWriter(part, w, h, fps) as writer:
            for frame in frames[k:k + segment]:
                writer.write(frame)
        parts.append(part)
    writer = VideoWriter(path, w, h, fps)
    writer.join(parts, len(frames))
    writer.close()
    return path


def keyframes_every(path: Path, frames: list[np.ndarray], fps, every: int) -> Path:
    """The control: one encode with x264's own keyframe every `every` frames (no join), from PNGs,
    with the writer's crf and pixel format."""
    for k, frame in enumerate(frames):
        write_image(path.with_name(f"in_{k:04d}.png"), Picture(frame.astype(np.float32) / 255))
    run_ffmpeg(["-y", "-v", "error", "-framerate", str(fps), "-i", str(path.with_name("in_%04d.png")), "-c:v",
                "libx264", "-crf", "18", "-pix_fmt", "yuv420p", "-x264-params",
                f"keyint={every}:min-keyint={every}:scenecut=0", str(path)], path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--segment", type=int, default=12)
    args = parser.parse_args()
    clips = sorted((SHARED / "video").glob("*.mp4"))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for clip in clips:
            info = probe(clip)
            h, w = video_size(info.width, info.height, args.size)
            frames = [f for _, f in zip(range(args.frames), read_frames(clip, size=(w, h)))]
            whole = warping_error(read_frames(encode(Path(folder) / "whole.mp4", frames, info.fps, None)), frames)
            joined = warping_error(read_frames(encode(Path(folder) / "joined.mp4", frames, info.fps, args.segment)),
                                   frames)
            control = warping_error(read_frames(keyframes_every(Path(folder) / "keyint.mp4", frames, info.fps,
                                                                args.segment)), frames)
            floor = warping_error(frames, frames)
            joins = list(range(args.segment, len(frames), args.segment))  # pair k-1 -> k crosses join k
            at = [joined[k - 1] / whole[k - 1] for k in joins]
            inside = [b / a for i, (a, b) in enumerate(zip(whole, joined)) if i + 1 not in joins]
            rows.append((clip.name, f"{w}x{h}", len(frames), at, float(np.median(inside)),
                         [whole[k - 1] * 1e4 for k in joins], [joined[k - 1] * 1e4 for k in joins],
                         [control[k - 1] * 1e4 for k in joins], float(np.mean(floor)) * 1e4))
            print(f"{clip.name}: {w}x{h}, {len(frames)} frames; pairs across the joins over the same pairs in one "
                  f"encode: {', '.join(f'{r:.2f}x' for r in at)}; other pairs, median {rows[-1][4]:.2f}x")
    lines = ["# Segment joins on every real clip", "",
             f"`python bench/joins.py --size {args.size} --frames {args.frames} --segment {args.segment}` (one run). "
             f"Each clip of ../shared/media/video: its first {args.frames} frames at {args.size} px, x264 crf 18, "
             f"encoded once and as segments of {args.segment} joined by a stream copy (what the orchestrator "
             "does). E_warp (x 1e-4, the input's flow) of each pair that crosses a join, against the same pair "
             "in the one encode; the other pairs' ratio (median) says how much the two encodes differ elsewhere. "
             "No stylisation: the encoder's pulse at a keyframe alone.", "",
             "| clip | size | frames | across each join: segments / one encode | E_warp there: one encode | "
             f"segments | one encode, x264 keyframe every {args.segment} | other pairs (median ratio) | "
             "the input's own E_warp |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, size, count, at, inside, whole_at, joined_at, control_at, floor in rows:
        lines.append(f"| {name} | {size} | {count} | {', '.join(f'{r:.2f}x' for r in at)} | "
                     f"{', '.join(f'{v:.2f}' for v in whole_at)} | {', '.join(f'{v:.2f}' for v in joined_at)} | "
                     f"{', '.join(f'{v:.2f}' for v in control_at)} | {inside:.2f}x | {floor:.2f} |")
    out = ROOT / "docs" / "joins.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
