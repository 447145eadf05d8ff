"""The measures the tests assert on, each said once: flicker (E_warp, through `nstvid-eval`), lag
behind the motion, texture kept along the chain, an image's content and style losses, and the
style of regions the motion reveals. bench/common.py imports them from here (bench/revealed.py,
bench/lag_check.py measure with the same code), so a bound in a test and a figure in docs/ agree.

Imported as `metrics`: the tests' folder is on the path under pytest (tests/conftest.py sits
there), and bench/common.py puts it there. It imports no test machinery (pytest, conftest) at the
top, so that the bench scripts run without the test extra."""
from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import torch

from nstvid.pipeline import flow
from nstvid.pipeline.engine import Engine
from nstvid.pipeline.frames import to_tensor
from nstvid.pipeline.gatys import content_targets, objective
from nstvid.pipeline.media.images import read_image, resize_rgb
from nstvid.pipeline.prepare import prepare
from nstvid.pipeline.settings import STYLE_LAYERS, Settings
from nstvid.pipeline.style_targets import StyleSet

AGES = 5  # revealed within the last 5 frames (issue 22's window)
OLD = 255  # age of pixels never revealed


# ---- flicker ----

def e_warp(source: Path, output: Path) -> dict:
    """`nstvid-eval temporal --json` of output against its source: E_warp, the input's own, per pair."""
    from conftest import nstvid_exe  # the tests' installed command (only the tests call this)

    r = subprocess.run([nstvid_exe("nstvid-eval"), "temporal", str(source), str(output), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# ---- lag behind the motion ----

def lag_count(outs, inputs, reach: int = 3) -> tuple[int, int, int]:
    """(frames matching another input frame better than their own, of them matching an earlier
    one, frames compared): correlation of blurred grey images over frames k-reach..k+reach."""
    def grey(f):
        g = cv2.GaussianBlur(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 2.0)
        return (g - g.mean()) / (g.std() + 1e-6)
    gi, go = [grey(f) for f in inputs], [grey(f) for f in outs]
    wrong = earlier = compared = 0
    for k in range(len(outs)):
        near = [j for j in range(k - reach, k + reach + 1) if 0 <= j < len(inputs)]
        if len(near) < 2:
            continue
        scores = {j: float((go[k] * gi[j]).mean()) for j in near}
        best = max(scores, key=scores.get)
        compared += 1
        if best != k:
            wrong += 1
            earlier += best < k
    return wrong, earlier, compared


# ---- texture along the chain ----

def texture_retention(frames: list[np.ndarray]) -> float:
    """Variance of the Laplacian of the grey frames, later frames' mean over frame 1's (1.0: as
    painted as the first frame, lower: softer along the chain), as ../shared/tools/motion_eval."""
    energy = [float(cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var()) for f in frames]
    return float(np.mean(energy[1:])) / energy[0]


# ---- seams of a tiled step ----

def seam_ratio(grey: np.ndarray, cuts_y: list[int], cuts_x: list[int]) -> float:
    """Mean absolute step across the given rows and columns of a grey (H, W) picture (where a tile
    starts or ends) over the mean absolute step across every row and column: about 1 where nothing
    marks those lines, higher where a seam shows."""
    dy, dx = np.abs(np.diff(grey, axis=0)), np.abs(np.diff(grey, axis=1))
    at = np.concatenate([dy[[y - 1 for y in cuts_y]].ravel(), dx[:, [x - 1 for x in cuts_x]].ravel()])
    return float(at.mean() / np.concatenate([dy.ravel(), dx.ravel()]).mean())


def tile_edges(tiles, size: tuple[int, int]) -> tuple[list[int], list[int]]:
    """The rows and columns (y, x lists) where tiles (y, x, h, w) of a picture of size (H, W)
    start or end inside it."""
    ys = {y for y, _, h, _ in tiles if y > 0} | {y + h for y, _, h, _ in tiles if y + h < size[0]}
    xs = {x for _, x, _, w in tiles if x > 0} | {x + w for _, x, _, w in tiles if x + w < size[1]}
    return sorted(ys), sorted(xs)


# ---- losses ----

def losses_of(image_path: Path, content_path: Path, style: Path, size: int) -> tuple[float, float]:
    """(content loss, style loss) of an image against a content picture and a style, our loss, fp32."""
    settings = Settings(styles=(str(style),), size=size, precision="fp32", device="cpu")
    engine = Engine.create(settings)
    styles = StyleSet(engine, settings)
    image = read_image(image_path).rgb
    content = resize_rgb(read_image(content_path).rgb, image.shape[:2])
    c_target, c_scale = content_targets(engine, to_tensor(content))
    with torch.no_grad():
        _, c, s = objective(engine, settings, to_tensor(image), c_target, c_scale, styles.targets(image.shape[:2]),
                            None)
    return float(c[0]), float(s[0])


# ---- revealed regions (bench/revealed.py's method) ----

def ages_of(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Per frame, uint8 (H, W): frames since each pixel was revealed (0: revealed in this frame),
    OLD where it has been visible since the first frame. Revealed: the chain's reliability < 0.5."""
    h, w = frames[0].shape[:2]
    ages = [np.full((h, w), OLD, np.uint8)]
    for prev, frame in zip(frames, frames[1:]):
        backward = flow.compute_flow(frame, prev)
        trusted = flow.reliability(flow.compute_flow(prev, frame), backward) >= 0.5
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        carried = cv2.remap(ages[-1], grid_x + backward[..., 0], grid_y + backward[..., 1],
                            cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        older = np.where(carried == OLD, OLD, np.minimum(carried.astype(np.int32) + 1, OLD - 1))
        ages.append(np.where(trusted, older, 0).astype(np.uint8))
    return ages


def masked_style_loss(prepared, image: np.ndarray, weight: np.ndarray) -> float:
    """Style loss of the pixels weighted by `weight` (H, W) in [0, 1]: per layer, the Gram of the
    features times the weight (downsampled by area to the layer), over C x the weights' sum,
    against the style's Gram target, normalised as in losses.style_loss."""
    h, w = image.shape[:2]
    engine, layer_weights = prepared.engine, prepared.settings.style_layer_weights
    targets = prepared.styles.targets((h, w))
    with torch.no_grad():
        feats = engine.features(to_tensor(image.astype(np.float32) / 255).to(engine.device))
    total = 0.0
    for layer, target, scale, lw in zip(STYLE_LAYERS, targets.grams, targets.scales, layer_weights):
        f = feats[layer].float()[0]
        c, fh, fw = f.shape
        m = torch.from_numpy(cv2.resize(weight, (fw, fh), interpolation=cv2.INTER_AREA)).to(f.device)
        rows = f.reshape(c, -1) * m.reshape(1, -1).sqrt()
        gram = rows @ rows.T / (c * m.sum().clamp_min(1e-6))
        total += lw * float((gram - target[0]).square().mean() / scale[0])
    return total / sum(layer_weights)


def twin(region: np.ndarray, old: np.ndarray) -> np.ndarray | None:
    """The same shape moved half a frame (across, else down) onto never-revealed pixels: a region
    as large and as thin, so the Gram's noise from few pixels is the same on both sides. None if
    under half of it lands on such pixels."""
    h, w = region.shape
    for shift, axis in ((w // 2, 1), (h // 2, 0)):
        moved = np.roll(region, shift, axis=axis) * old
        if moved.sum() >= 0.5 * region.sum():
            return moved
    return None


def region_ratios(prepared, output: np.ndarray, age: np.ndarray) -> dict[int, float]:
    """{age: style loss of the pixels of that age over that of their twin among the never-revealed
    pixels} for one frame; regions under 1% of the frame are left out (too few pixels)."""
    old = (age == OLD).astype(np.float32)
    ratios = {}
    for a in range(AGES):
        region = (age == a).astype(np.float32)
        other = twin(region, old) if region.mean() >= 0.01 else None
        if other is not None:
            ratios[a] = (masked_style_loss(prepared, output, region)
                         / masked_style_loss(prepared, output, other))
    return ratios


def revealed_ratio(settings: Settings, outs, inputs, max_age: int = 2) -> tuple[float, int]:
    """Mean region style ratio of pixels revealed within max_age frames, each over the same ratio,
    same region, on the chain's first frame (a full optimisation of the shot: what a region of that
    shape, at the border say, scores when it is as painted as the rest; the control bench/revealed.py
    gets from a full optimisation of each measured frame, without its cost); (mean, frames counted)."""
    prepared = prepare(dataclasses.replace(settings, precision="fp32"))
    ages = ages_of(inputs)
    values = []
    for out, age in zip(outs[1:], ages[1:]):
        young = np.where(age <= max_age, 0, OLD).astype(np.uint8)  # one region: ages 0..max_age
        ratio = region_ratios(prepared, out, young).get(0)
        control = region_ratios(prepared, outs[0], young).get(0)
        if ratio is not None and control is not None:
            values.append(ratio / control)
    return (float(np.mean(values)) if values else float("nan")), len(values)
