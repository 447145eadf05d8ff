"""Cut the small real clips the tests use from ../shared/media/video (licences in README.md).

    .venv/bin/python sample_media/make_real_clips.py

Each is a short part of a real camera clip at a small size, with its sound where it has one;
cut.mp4 joins the water and the film parts (a scene cut after frame 12) for the cut tests.
"""
from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg

from nstvid.pipeline.media.video import probe, run_ffmpeg

HERE = Path(__file__).resolve().parent
VIDEO = HERE.parent.parent / "shared" / "media" / "video"
ENCODE = ["-c:v", "libx264", "-crf", "16", "-preset", "slow", "-pix_fmt", "yuv420p", "-bitexact"]
AUDIO = ["-c:a", "aac", "-b:a", "64k"]
# name: (source, first frame, frames, width, height, fps kept from the source)
CLIPS = {
    "water.mp4": ("water_handheld.mp4", 0, 24, 240, 180),
    "friday.mp4": ("friday_film.mp4", 60, 24, 240, 180),
    "walking.mp4": ("people_walking.mp4", 330, 24, 256, 144),
}


def cut(name: str, source: str, first: int, frames: int, width: int, height: int) -> None:
    """Frames first..first+frames-1 of source at width x height, its sound cut to match."""
    out, path = HERE / name, VIDEO / source
    fps = float(probe(path).fps)
    run_ffmpeg(["-y", "-ss", f"{first / fps:.6f}", "-i", str(path), "-vf", f"scale={width}:{height}:flags=area",
                "-frames:v", str(frames), "-t", f"{frames / fps:.6f}", *ENCODE, *AUDIO, str(out)], path=out)


def main() -> None:
    for name, spec in CLIPS.items():
        cut(name, *spec)
    out = HERE / "cut.mp4"
    water, friday = HERE / "water.mp4", HERE / "friday.mp4"
    run_ffmpeg(["-y", "-i", str(water), "-i", str(friday), "-filter_complex",
                "[0:v]trim=end_frame=12,setpts=PTS-STARTPTS,fps=30[a];"
                "[1:v]trim=end_frame=12,setpts=PTS-STARTPTS,fps=30[b];[a][b]concat=n=2:v=1:a=0[v]",
                "-map", "[v]", *ENCODE, str(out)], path=out)
    print("ffmpeg", imageio_ffmpeg.get_ffmpeg_version())


if __name__ == "__main__":
    main()
