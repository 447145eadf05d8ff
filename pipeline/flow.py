"""Optical flow, warping, occlusion masks, scene-cut detection and the E_warp metric.

Pure numpy-in / numpy-out functions (OpenCV underneath); no torch here.

Conventions used throughout:
- frames are RGB ``uint8`` arrays of shape ``(H, W, 3)``;
- a flow is a ``float32`` array of shape ``(H, W, 2)`` living on the pixel grid of the frame it
  starts from, with ``flow[y, x] = (u, v)`` = (x, y) displacement in pixels;
- "forward" flow goes from frame t-1 to frame t (on t-1's grid), "backward" flow from t to t-1
  (on t's grid).  Bringing anything from frame t-1 into frame t is a *backward* warp with the
  backward flow: ``warp(prev, flow_t_to_prev)``.

Formulas follow Ruder, Dosovitskiy & Brox 2016, "Artistic style transfer for videos" (reliability
mask, as in their consistencyChecker) and Lai et al. 2018, "Learning Blind Video Temporal
Consistency" (E_warp); each docstring states the formula it implements.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = [
    "DIS_PRESETS",
    "compute_flow",
    "flow_at_size",
    "photometric_mask",
    "fill_unreliable",
    "is_scene_cut",
    "read_flo",
    "reliability",
    "scene_cut_score",
    "warp",
    "warping_error",
]

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    # medium down to the frames' own resolution (finest scale 0: medium stops at half of it).
    # Sintel alley_2 endpoint error at 192 px: 0.046 px against medium's 0.066, from frames twice
    # that size 0.023 against 0.045; 3-5x medium's milliseconds (docs/motion.md).
    "fine": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
FINEST_SCALE = {"fine": 0}  # DIS's finest pyramid level where it differs from the preset's

# A DIS object keeps internal buffers, so one instance must not be used from two threads at once;
# keep one per (thread, preset).
_dis_cache = threading.local()


def _dis(preset: str) -> cv2.DISOpticalFlow:
    """Return this thread's cached DIS optical-flow object for ``preset``."""
    key = preset.lower()
    if key not in DIS_PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; choose one of {sorted(DIS_PRESETS)}")
    cache = getattr(_dis_cache, "objects", None)
    if cache is None:
        cache = _dis_cache.objects = {}
    if key not in cache:
        cache[key] = cv2.DISOpticalFlow_create(DIS_PRESETS[key])  # type: ignore[attr-defined]
        if key in FINEST_SCALE:
            cache[key].setFinestScale(FINEST_SCALE[key])
    return cache[key]


def _gray(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) or gray (H, W) -> contiguous gray uint8 (H, W)."""
    if frame.dtype != np.uint8:
        raise TypeError(f"expected a uint8 frame, got {frame.dtype}")
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected an (H, W, 3) RGB or (H, W) gray frame, got shape {frame.shape}")


def compute_flow(frame_a: np.ndarray, frame_b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """Dense optical flow from ``frame_a`` to ``frame_b`` with OpenCV's DIS.

    Args:
        frame_a, frame_b: RGB uint8 frames of the same shape (H, W, 3) (gray (H, W) also accepted).
        preset: "ultrafast", "fast", "medium" (DIS presets) or "fine" (medium down to the frames'
            own resolution: the most accurate).

    Returns:
        float32 array (H, W, 2) on ``frame_a``'s grid: ``flow[y, x] = (u, v)`` such that the pixel
        at (x, y) in ``a`` moves to (x + u, y + v) in ``b``.
    """
    gray_a, gray_b = _gray(frame_a), _gray(frame_b)
    if gray_a.shape != gray_b.shape:
        raise ValueError(f"frame shapes differ: {frame_a.shape} vs {frame_b.shape}")
    return _dis(preset).calc(gray_a, gray_b, None).astype(np.float32, copy=False)


def flow_at_size(flow_field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A flow (H, W, 2) float32 computed on larger frames, brought to size (h, w): resampled (area)
    and its vectors scaled by the size ratio, so it is in the smaller frames' pixels."""
    h, w = size
    if flow_field.shape[:2] == (h, w):
        return flow_field
    scale = np.array([w / flow_field.shape[1], h / flow_field.shape[0]], np.float32)
    return cv2.resize(flow_field, (w, h), interpolation=cv2.INTER_AREA) * scale


def photometric_mask(previous: np.ndarray, frame: np.ndarray, backward_flow: np.ndarray,
                     threshold: float) -> np.ndarray:
    """Where the flow truly brings frame t-1's picture into frame t: 1 where the warped previous
    *input* matches this input, 0 where it does not, a ramp between.

    The forward-backward check (``reliability``) trusts a flow that is wrong both ways alike, as
    DIS is where it misses thin or fast motion; a temporal term there holds the previous frame's
    content in place, and the painting lags behind the motion. Comparing the inputs catches it.

    Args:
        previous, frame: RGB uint8 (H, W, 3) input frames t-1 and t.
        backward_flow: float32 (H, W, 2), t -> t-1 on t's grid.
        threshold: largest channel difference (0-255) still fully trusted; trust falls linearly
            to 0 at twice it. The difference is taken after a 3x3 box blur of both, so that sensor
            noise and compression do not count.

    Returns:
        float32 (H, W) in [0, 1].
    """
    warped = warp(previous, backward_flow).astype(np.float32)
    diff = np.abs(cv2.blur(warped, (3, 3)) - cv2.blur(frame.astype(np.float32), (3, 3))).max(axis=-1)
    return np.clip(2.0 - diff / threshold, 0.0, 1.0).astype(np.float32)


def _sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute sampling coordinates (map_x, map_y), float32 (H, W), for ``x + u``, ``y + v``."""
    h, w = flow.shape[:2]
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return xx + flow[..., 0], yy + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray, interpolation: str = "linear") -> np.ndarray:
    """Backward-warp ``image`` by ``flow``: ``out[y, x] = image[y + v, x + u]`` (bilinear, or
    ``interpolation="cubic"`` / ``"lanczos"`` (8x8 Lanczos): sharper, for painted strokes warped
    frame after frame, which bilinear blurs a little each time).

    To bring the previous frame (or the previous stylised output) into the current frame, pass the
    flow from the *current* frame to the previous one (on the current frame's grid).

    Args:
        image: (H, W) or (H, W, C) array, uint8 or float32 (any range; values are interpolated,
            and uint8 results are rounded by OpenCV).
        flow: float32 (H, W, 2) on the output grid.

    Returns:
        Array of the same shape and dtype as ``image`` (cubic overshoots a little at edges:
        callers clip to their range).  Samples falling outside the image take the
        nearest border value (BORDER_REPLICATE).  cv2.remap quantises sub-pixel weights to 1/32.
    """
    if image.shape[:2] != flow.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and flow {flow.shape[:2]} sizes differ")
    map_x, map_y = _sample_grid(flow.astype(np.float32, copy=False))
    # cv2.remap handles at most 4 channels; warp wider arrays in chunks.
    if image.ndim == 3 and image.shape[2] > 4:
        parts = [warp(image[..., i : i + 4], flow, interpolation) for i in range(0, image.shape[2], 4)]
        return np.concatenate(parts, axis=2)
    kind = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}[interpolation]
    out = cv2.remap(np.ascontiguousarray(image), map_x, map_y, kind, borderMode=cv2.BORDER_REPLICATE)
    if image.ndim == 3 and out.ndim == 2:  # remap drops a trailing singleton channel
        out = out[..., None]
    return out


def reliability(
    forward_flow: np.ndarray, backward_flow: np.ndarray, blur: bool = True, boundaries: bool = True
) -> np.ndarray:
    """Per-pixel reliability ``c`` of the warped previous frame (Ruder et al. 2016).

    Args:
        forward_flow: float32 (H, W, 2), flow w from frame t-1 to frame t, on t-1's grid.
        backward_flow: float32 (H, W, 2), flow w^ from frame t to frame t-1, on t's grid.
        blur: smooth the binary mask with a 5-tap Gaussian (sigma 0.8), as Ruder et al.'s
            consistency checker does before using it as the temporal-loss weight.  Use
            ``blur=False`` for the hard mask (E_warp in ``warping_error`` uses the hard mask,
            as Lai et al. do).
        boundaries: distrust motion boundaries too (Ruder et al.'s second test); False keeps the
            disocclusion and outside tests only.

    Returns:
        float32 (H, W) in [0, 1] on frame t's grid: 0 where frame t's pixel is disoccluded
        (not visible in t-1), on a motion boundary, or maps outside frame t-1; 1 elsewhere.

    With w~ = w sampled at x + w^(x) (where the backward flow points to in t-1):
      - disoccluded if  |w~ + w^|^2 > 0.01 (|w~|^2 + |w^|^2) + 0.5
      - motion boundary if  |grad u^|^2 + |grad v^|^2 > 0.01 |w^|^2 + 0.002
    Gradients are central differences (one-sided at the image border).
    """
    if forward_flow.shape != backward_flow.shape or forward_flow.shape[-1] != 2:
        raise ValueError(
            f"flows must both be (H, W, 2); got {forward_flow.shape} and {backward_flow.shape}"
        )
    fwd = forward_flow.astype(np.float32, copy=False)
    bwd = backward_flow.astype(np.float32, copy=False)
    fwd_at_target = warp(fwd, bwd)  # w~

    round_trip = np.sum((fwd_at_target + bwd) ** 2, axis=-1)
    magnitudes = np.sum(fwd_at_target**2, axis=-1) + np.sum(bwd**2, axis=-1)
    disoccluded = round_trip > 0.01 * magnitudes + 0.5

    du_dy, du_dx = np.gradient(bwd[..., 0])
    dv_dy, dv_dx = np.gradient(bwd[..., 1])
    grad_sq = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2
    boundary = (grad_sq > 0.01 * np.sum(bwd**2, axis=-1) + 0.002) & boundaries

    # A pixel whose backward flow leaves the previous frame has no previous content to compare with
    # (content entering the view); warp() would only replicate the border there.  Ruder et al.'s
    # reference checker zeroes these too (it also drops the last row/column even at zero flow;
    # landing exactly on the border is kept here).
    map_x, map_y = _sample_grid(bwd)
    h, w = bwd.shape[:2]
    outside = (map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)

    mask = np.ones(bwd.shape[:2], np.float32)
    mask[boundary | outside] = 0.0
    if not blur:
        mask[disoccluded] = 0.0
        return mask
    # As in the reference checker, disocclusions get a negative value before smoothing so that the
    # blur spreads unreliability outwards rather than letting them fade to ~0.5; clip after.
    mask[disoccluded] = -1.0
    mask = cv2.GaussianBlur(mask, (5, 5), 0.8, borderType=cv2.BORDER_REPLICATE)
    return np.clip(mask, 0.0, 1.0)


def fill_unreliable(image: np.ndarray, mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """Fill the pixels a reliability mask distrusts from the trusted ones around them.

    Args:
        image: float32 (H, W, 3) in [0, 1], e.g. the previous stylised frame warped into this one.
        mask: float32 (H, W) in [0, 1] from ``reliability``; pixels under 0.5 are filled.
        radius: how far (px) around each filled pixel the inpainting looks.

    Returns:
        float32 (H, W, 3) in [0, 1]: ``image`` where trusted, elsewhere OpenCV's Telea inpainting
        of it (8-bit inside OpenCV), so a newly revealed strip takes the colours and strokes at its
        edge instead of a smear of the border or of the occluder.
    """
    holes = (mask < 0.5).astype(np.uint8)
    if not holes.any():
        return image
    u8 = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    filled = cv2.inpaint(u8, holes, radius, cv2.INPAINT_TELEA).astype(np.float32) / 255.0
    return np.where(holes[..., None] > 0, filled, image)


# --- scene cuts -----------------------------------------------------------------------------------

_CUT_SIZE = (128, 72)  # analysis size (w, h): only global colour statistics matter


def _hs_histogram(frame: np.ndarray) -> np.ndarray:
    """Normalised 2-D hue/saturation histogram (16 x 8 bins) of a downscaled RGB uint8 frame."""
    small = cv2.resize(frame, _CUT_SIZE, interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    hist = hist.astype(np.float32)
    return hist / max(float(hist.sum()), 1.0)


def _gray_histogram(frame: np.ndarray) -> np.ndarray:
    """Normalised 32-bin histogram of a downscaled RGB uint8 frame's luminance scaled to a mean of
    128, so that a change of light (luminance times a gain) leaves it as it was. Each bin shares a
    quarter of its count with each neighbour: scaled, a clipped sky (many pixels of one value) lands
    near a bin edge, and a small change of exposure moved all of it to the next bin (realshort's
    frames 24-25 scored 0.19 with hard bins, 0.09 with these)."""
    small = cv2.resize(_gray(frame), _CUT_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    small = np.minimum(small * (128.0 / max(float(small.mean()), 1.0)), 255.0)
    hist = cv2.calcHist([small], [0], None, [32], [0, 256]).ravel()
    hist = np.convolve(np.pad(hist, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid").astype(np.float32)
    return hist / max(float(hist.sum()), 1.0)


def scene_cut_score(frame_a: np.ndarray, frame_b: np.ndarray) -> float:
    """Dissimilarity in [0, 1] of two frames' colour statistics; large means "different shot".

    The score is the larger of the Bhattacharyya distances between the frames' hue/saturation
    histograms and between their luminance histograms, each luminance scaled to the same mean,
    computed on 128x72 thumbnails.  Histograms ignore where things are, so camera motion (pans,
    zooms, rotation) barely moves the score, while a cut to an unrelated shot changes the colour
    distribution.  Hue, saturation and the scaled luminance are unchanged by a change of light
    (the footage times a gain: a lamp, a cloud, an exposure change, old film's flicker), which is
    not a new shot: as a cut it was repainted from scratch, a pop (docs/motion.md).

    Known limits: two different shots with nearly the same palette (a cut between two angles of
    one room) can score low, and so can two grey shots of one tonal spread at different exposures;
    brightening that clips highlights still scores high (realshort times 1.5: 0.46).

    Args:
        frame_a, frame_b: RGB uint8 (H, W, 3); sizes may differ.
    """
    distances = (
        cv2.compareHist(_hs_histogram(frame_a), _hs_histogram(frame_b), cv2.HISTCMP_BHATTACHARYYA),
        cv2.compareHist(
            _gray_histogram(frame_a), _gray_histogram(frame_b), cv2.HISTCMP_BHATTACHARYYA
        ),
    )
    return float(min(max(distances), 1.0))


def is_scene_cut(frame_a: np.ndarray, frame_b: np.ndarray, threshold: float) -> bool:
    """True when ``frame_b`` looks like a hard cut from ``frame_a`` (see ``scene_cut_score``).

    Args:
        frame_a, frame_b: RGB uint8 (H, W, 3) consecutive frames.
        threshold: score above which it is a cut (Settings.scene_cut_threshold, with the
            measurements behind it).
    """
    return scene_cut_score(frame_a, frame_b) > threshold


# --- metric ---------------------------------------------------------------------------------------


def warping_error(
    output_frames: Iterable[np.ndarray],
    input_frames: Iterable[np.ndarray],
    preset: str = "medium",
) -> list[float]:
    """Temporal warping error E_warp of Lai et al. 2018, one value per consecutive frame pair.

    For each t >= 1, flows are computed on the *input* frames (backward t -> t-1 and forward
    t-1 -> t, DIS ``preset``), the hard reliability mask (``reliability(..., blur=False)``) selects
    non-occluded pixels, output t-1 is warped into frame t and

        E_t = sum over kept pixels of ||O_t - warp(O_{t-1})||^2 / (number of kept pixels)

    with RGB in [0, 1] and the squared difference *summed over the three channels* per pixel (as in
    Lai et al.'s reference code).  If no pixel is kept, the mean over all pixels is used.  The
    caller averages the list for the video's E_warp; ``warping_error(x, x)`` is the floor set by
    flow errors and lighting changes.

    Args:
        output_frames: iterable of RGB uint8 (H, W, 3) frames (e.g. stylised video).
        input_frames: iterable of RGB uint8 frames of the source video, same count.  If their size
            differs from the output's, they are resized (INTER_AREA) to the output size for flow.
            Both are consumed lazily, two frames at a time, so long videos can be streamed.

    Returns:
        list of len(frames) - 1 floats.

    Raises:
        ValueError: if the two iterables have different lengths.
    """
    errors: list[float] = []
    prev_out = prev_in = None
    sentinel: Any = object()
    outputs, inputs = iter(output_frames), iter(input_frames)
    while True:
        out, inp = next(outputs, sentinel), next(inputs, sentinel)
        if out is sentinel or inp is sentinel:
            if out is not inp:
                raise ValueError("output and input frame sequences have different lengths")
            return errors
        if inp.shape[:2] != out.shape[:2]:
            inp = cv2.resize(inp, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_AREA)
        if prev_out is not None:
            errors.append(_pair_warping_error(prev_out, out, prev_in, inp, preset))
        prev_out, prev_in = out, inp


def _pair_warping_error(
    prev_out: np.ndarray, out: np.ndarray, prev_in: np.ndarray, inp: np.ndarray, preset: str
) -> float:
    """E_warp of one pair: see ``warping_error``."""
    backward = compute_flow(inp, prev_in, preset)
    forward = compute_flow(prev_in, inp, preset)
    keep = reliability(forward, backward, blur=False) > 0.5
    warped = warp(prev_out.astype(np.float32) / 255.0, backward)
    sq = np.sum((out.astype(np.float32) / 255.0 - warped) ** 2, axis=-1)
    if not keep.any():
        return float(sq.mean())
    return float(sq[keep].mean())


def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury ``.flo`` file into a float32 (H, W, 2) array of (u, v) pixel displacements.

    Format: float32 tag 202021.25, int32 width, int32 height, then row-major float32 (u, v) pairs
    (little-endian).
    """
    data = Path(path).read_bytes()
    if len(data) < 12 or np.frombuffer(data, "<f4", 1)[0] != np.float32(202021.25):
        raise ValueError(f"{path}: not a Middlebury .flo file (bad magic number)")
    width, height = (int(v) for v in np.frombuffer(data, "<i4", 2, offset=4))
    expected = 12 + width * height * 8
    if width <= 0 or height <= 0 or len(data) != expected:
        raise ValueError(f"{path}: .flo header says {width}x{height}, file size is {len(data)}")
    values = np.frombuffer(data, "<f4", width * height * 2, offset=12)
    return values.reshape(height, width, 2).copy()
