"""Make the project's sample clips from the photos in this folder (deterministic).

    .venv/bin/python sample_media/make_sample_clip.py

- ``pan.mp4``: 3 s, 25 fps, 320x180, a slow pan left-to-right with a gentle zoom-in over
  ``coffee.jpg``, with a 440 Hz sine tone as its AAC audio track.
- ``orbit.mp4``: 3 s, 25 fps, 320x180, no audio: a rotation (-8 to +8 degrees) with a zoom-in
  (1.0x to 1.35x) over ``astronaut.jpg`` — different motion for benchmarks.

Frames are rendered with OpenCV (sub-pixel affine warps, so the motion is smooth; ffmpeg's zoompan
rounds the crop to whole pixels and judders) and encoded by ``nstvid.pipeline.media.video.VideoWriter``.
The tone is made as PCM WAV, which MP4 cannot hold, so the writer's audio re-encode (to AAC) path
runs here too.
"""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from nstvid.pipeline.media.video import VideoWriter, run_ffmpeg

HERE = Path(__file__).resolve().parent

SIZE = (320, 180)  # (width, height)
FPS = Fraction(25)
SECONDS = 3
FRAMES = int(FPS * SECONDS)


def _load_rgb(name: str) -> np.ndarray:
    image = cv2.imread(str(HERE / name), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(HERE / name)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _render(source: np.ndarray, center, scale: float, angle_deg: float, size=SIZE) -> np.ndarray:
    """One ``size`` (width, height) output frame: the source seen through a window at ``center``
    (x, y, source pixels), ``scale`` source pixels per output pixel, rotated by ``angle_deg``
    (counter-clockwise)."""
    width, height = size
    theta = np.deg2rad(angle_deg)
    cos, sin = np.cos(theta) * scale, np.sin(theta) * scale
    # Output pixel (x, y) samples source at center + R * scale * ((x, y) - output centre).
    ox, oy = (width - 1) / 2, (height - 1) / 2
    matrix = np.array(
        [
            [cos, -sin, center[0] - cos * ox + sin * oy],
            [sin, cos, center[1] - sin * ox - cos * oy],
        ]
    )
    return cv2.warpAffine(
        source, matrix, size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )  # fmt: skip


def _smooth(s: float) -> float:
    """Ease-in/ease-out of s in [0, 1], like a camera operator would move."""
    return s * s * (3 - 2 * s)


def pan_frames(source: np.ndarray, size=SIZE):
    """Slow pan across the photo with a zoom-in from 1.0x to 1.15x, ``size`` (width, height) frames
    (the same view at any size)."""
    h, w = source.shape[:2]
    base_scale = 0.72 * w / size[0]  # window 72% of the photo's width at zoom 1
    for i in range(FRAMES):
        s = _smooth(i / (FRAMES - 1))
        scale = base_scale / (1.0 + 0.15 * s)
        half_w = scale * size[0] / 2
        x = half_w + 4 + s * (w - 2 * half_w - 8)
        y = h * (0.52 - 0.04 * s)
        yield _render(source, (x, y), scale, 0.0, size)


def orbit_frames(source: np.ndarray, size=SIZE):
    """Rotation from -8 to +8 degrees about the face with a zoom-in from 1.0x to 1.35x."""
    h, w = source.shape[:2]
    base_scale = 0.8 * w / size[0]
    for i in range(FRAMES):
        s = _smooth(i / (FRAMES - 1))
        scale = base_scale / (1.0 + 0.35 * s)
        yield _render(source, (w * 0.48, h * 0.36), scale, -8.0 + 16.0 * s, size)


def write_clip(path: Path, frames, audio_from: Path | None) -> None:
    with VideoWriter(path, SIZE[0], SIZE[1], FPS, audio_from=audio_from, crf=20) as writer:
        for frame in frames:
            writer.write(frame)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tone = Path(tmp) / "tone.wav"
        run_ffmpeg(
            ["-y", "-v", "error", "-f", "lavfi",
             "-i", f"sine=frequency=440:sample_rate=44100:duration={SECONDS}",
             "-af", "volume=0.3", "-c:a", "pcm_s16le", str(tone)],
            tone,
        )  # fmt: skip
        write_clip(HERE / "pan.mp4", pan_frames(_load_rgb("coffee.jpg")), tone)
    write_clip(HERE / "orbit.mp4", orbit_frames(_load_rgb("astronaut.jpg")), None)


if __name__ == "__main__":
    main()
