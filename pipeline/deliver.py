"""The detail step: a painting made at the working size (--size) -> the output at --output-size
(the source's own size by default), for pictures and video frames alike.

The optimisation runs at the working size because the strokes' size is VGG19's fixed pixel scale
and the cost grows with the pixels (docs/resolution.md). Enlarging the painting alone (Lanczos)
leaves it soft at the output size: the input's fine detail, lost when the input was brought down
to the working size, is missing. The guided step puts back that detail, and only that:

    out = up(painting) + A * shrink(Y - up(down(Y)))

Y is the input's luminance at the output size; Y - up(down(Y)) is the band the working size cannot
hold, and shrink leaves the input's grain out of it. A is the painting's local linear response to
the input's luminance (the guided filter's slope, He, Sun & Tang 2013; taken at the working size
and enlarged, as the fast guided filter of He & Sun 2015 does): where the painting follows the
input's edges (A near 1), their fine detail is added; where it paints over them with strokes of its
own (A near 0), nothing is. So the added detail comes from the input and moves with it: in a video
it adds the input's own motion only.
Where the guided filter would output A * Y + B, this keeps the enlarged painting itself: the
strokes are the look, and a linear model of them on the input would smooth them away.
"""
from __future__ import annotations

import cv2
import numpy as np

from .media.images import Picture, fit_long_side

# The guided filter's window at the working size: (2 * RADIUS + 1) px square. Small, so that A
# follows the painting's edges, not the average of a neighbourhood of strokes.
RADIUS = 2
# Its regulariser on the luminance variance ([0, 1] units squared): below a local contrast of about
# sqrt(EPS) (0.03, 8 levels of 255) A falls towards 0, so flat regions (sky, skin, grain) gain no
# amplified noise.
EPS = 1e-3
# A is clipped to [0, MAX_GAIN]: a painting that inverts the input locally gets no detail, and a
# steep slope where the input barely varies cannot amplify its band.
MAX_GAIN = 1.5
# The band is soft-thresholded at this many times its estimated noise level (shrink): 2 leaves out
# about 95% of Gaussian noise and keeps edges at their height less the cut.
NOISE_CUT = 2.0
REC601 = np.array([0.299, 0.587, 0.114], np.float32)


def output_size(source: tuple[int, int], long_side: int | None) -> tuple[int, int]:
    """The output's (h, w) for a source of (h, w): the source's own (long_side None), else its long
    side scaled to long_side, aspect kept."""
    return (source[0], source[1]) if long_side is None else fit_long_side(source, long_side)


def video_output_size(width: int, height: int, long_side: int | None) -> tuple[int, int]:
    """A video's output (h, w): output_size, both sides even (yuv420p), at least 2."""
    h, w = output_size((height, width), long_side)
    return max(2, h - h % 2), max(2, w - w % 2)


def _box(x: np.ndarray) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * RADIUS + 1, 2 * RADIUS + 1), borderType=cv2.BORDER_REFLECT)


def resized(x: np.ndarray, size: tuple[int, int], up: int = cv2.INTER_LANCZOS4) -> np.ndarray:
    """(h, w[, c]) float32 -> size (h, w): area filter down, `up` up."""
    h, w = size
    if x.shape[:2] == (h, w):
        return x
    shrinking = h <= x.shape[0] and w <= x.shape[1]
    return cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA if shrinking else up)


def slope(painting: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """The guided filter's A per colour channel: the painting's local linear response to the
    guide. painting (h, w, 3), guide (h, w), float32 [0, 1] -> (h, w, 3) in [0, MAX_GAIN]."""
    mean_g = _box(guide)
    var_g = _box(guide * guide) - mean_g * mean_g
    a = np.empty_like(painting)
    for c in range(3):
        p = np.ascontiguousarray(painting[..., c])
        a[..., c] = (_box(guide * p) - mean_g * _box(p)) / (var_g + EPS)
    return np.clip(_box(a), 0.0, MAX_GAIN)  # averaged over the windows that hold each pixel, as He et al.


def shrink(band: np.ndarray) -> np.ndarray:
    """The band with the input's grain left out: soft-thresholded at NOISE_CUT times its noise level,
    estimated robustly (the median absolute value / 0.6745, as wavelet shrinkage does, Donoho &
    Johnstone 1994). Sensor noise and film grain fill the band everywhere at low amplitude; edges
    and texture stand out of it, and only what stands out is added."""
    sigma = float(np.median(np.abs(band))) / 0.6745
    cut = NOISE_CUT * sigma
    return np.sign(band) * np.maximum(np.abs(band) - cut, 0.0)


def detail(painting: np.ndarray, source: np.ndarray, size: tuple[int, int], how: str = "guided") -> np.ndarray:
    """The painting (h, w, 3) float32 [0, 1] at the output size (H, W), with the fine detail of
    source (any size, (Hs, Ws, 3) float32 [0, 1]: the input the painting was made from) where
    `how` is "guided" or "polish" (whose iterations for stills follow: polish.py); "resize": Lanczos
    alone. No step adds detail below the working size."""
    up = np.clip(resized(painting, size), 0.0, 1.0)
    if how == "resize" or (size[0] <= painting.shape[0] and size[1] <= painting.shape[1]):
        return up
    luma = resized(np.ascontiguousarray(source, np.float32), size, cv2.INTER_CUBIC) @ REC601
    small = resized(luma, painting.shape[:2])
    band = shrink(luma - resized(small, size))  # what the working size cannot hold, grain left out
    gain = cv2.resize(slope(painting, small), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(up + gain * band[..., None], 0.0, 1.0)


def deliver_picture(painted: Picture, source: Picture, long_side: int | None, how: str) -> Picture:
    """A stylised picture at the working size -> the output picture: its size output_size of the
    source's, its alpha the source's at that size; bit depth and grayscale kept."""
    size = output_size(source.size, long_side)
    alpha = None if source.alpha is None else np.clip(resized(source.alpha, size, cv2.INTER_CUBIC), 0.0, 1.0)
    return Picture(detail(painted.rgb, source.rgb, size, how), alpha, painted.bit_depth, painted.grayscale)


def deliver_frame(painted: np.ndarray, source: np.ndarray, how: str) -> np.ndarray:
    """A stylised video frame (h, w, 3) uint8 at the working size -> (H, W, 3) uint8 at the size of
    source, the input frame decoded at the output size."""
    if painted.shape == source.shape:
        return painted
    out = detail(painted.astype(np.float32) / 255.0, source.astype(np.float32) / 255.0, source.shape[:2], how)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
