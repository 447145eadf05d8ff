"""--detail polish: a few optimisation iterations at the output size, in tiles, after the guided
step (the coarse-to-fine schedule continued one level; stills only).

    out = blend over tiles of optimise(guided tile, towards the input's tile and the style)

The guided step (deliver.py) adds the input's fine detail; the polish lets the style term paint at
the output size too, so the strokes get fine texture of their own and the added detail becomes
painted rather than photographic. Video frames take the guided step alone: iterations per frame at
the output size, with no temporal term there, would repaint each frame on its own and flicker.

Memory is bounded at any output size: the network only ever sees a tile of at most `polish_tile`
px a side. The tile plan (tile_plan) depends on the output size and that setting only, so every
machine paints the same tiles; free memory decides only how many run at once (batching.in_batches
halves the batch on out of memory), and the optimiser keeps per-sample state, so a batch of tiles
behaves as tiles run one by one. Tiles overlap by at least POLISH_OVERLAP px and are blended linearly
across it, so no seam shows (tests/test_output_size.py measures the gradient across the seams).

Where this departs from a plain continuation of the schedule: each tile's Gram matrices are matched
to the whole style's, not the whole picture's (the tiles are optimised apart), and the style
targets are taken with the style image at most at its own size (polish_style_size): enlarging a
small style image to the output's area would add only blur to the targets.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from .batching import BatchLimit, OutOfMemory, image_batch, in_batches
from .color import luminance, recombine
from .deliver import deliver_picture, resized
from .frames import to_rgb
from .gatys import optimise
from .media.images import Picture
from .prepare import Prepared
from .progress import Callback, Message, ignore
from .settings import POLISH_OVERLAP, Settings

Tile = tuple[int, int, int, int]  # (y, x, h, w) in the output


def tile_starts(length: int, tile: int) -> list[int]:
    """Starts of tiles of side min(tile, length) that cover [0, length) with overlaps of at least
    POLISH_OVERLAP, spread evenly: the first at 0, the last at length - tile."""
    if length <= tile:
        return [0]
    count = math.ceil((length - POLISH_OVERLAP) / (tile - POLISH_OVERLAP))
    step = (length - tile) / (count - 1)
    return [round(k * step) for k in range(count)]


def tile_plan(size: tuple[int, int], tile: int) -> list[Tile]:
    """The tiles (y, x, h, w) of an output of size (H, W): row by row, each at most tile px a side."""
    h, w = min(tile, size[0]), min(tile, size[1])
    return [(y, x, h, w) for y in tile_starts(size[0], tile) for x in tile_starts(size[1], tile)]


def _ramp(start: int, side: int, length: int) -> np.ndarray:
    """A tile's blending weight along one axis (side,) in (0, 1]: rising over POLISH_OVERLAP px from an
    edge that lies inside the picture, 1 elsewhere."""
    t = np.arange(side, dtype=np.float32) + 0.5
    weight = np.ones(side, np.float32)
    if start > 0:
        weight = np.minimum(weight, t / POLISH_OVERLAP)
    if start + side < length:
        weight = np.minimum(weight, (side - t) / POLISH_OVERLAP)
    return weight


def blend_weights(tile: Tile, size: tuple[int, int]) -> np.ndarray:
    """The blending weight (h, w) of tile (y, x, h, w) in an output of size (H, W)."""
    y, x, h, w = tile
    return _ramp(y, h, size[0])[:, None] * _ramp(x, w, size[1])[None, :]


def polish_tiles(settings: Settings, working: tuple[int, int], output: tuple[int, int]) -> list[Tile]:
    """The tiles a still painted at working (h, w) is polished in at output (h, w): none unless
    --detail polish and the output is larger than the working size (no step adds detail below it)."""
    if settings.detail != "polish" or (output[0] <= working[0] and output[1] <= working[1]):
        return []
    return tile_plan(output, settings.polish_tile)


def polish_style_size(output: tuple[int, int], style_sizes: list[tuple[int, int]],
                      style_scale: float) -> tuple[int, int]:
    """The size (h, w) whose style targets the polish matches: the output's, so that the strokes
    keep their size relative to the picture, but made smaller where that would enlarge the smallest
    style image (style_sizes (h, w)) beyond its own area (the targets take the style at the
    working area times style_scale squared: style_targets.StyleSet)."""
    area = output[0] * output[1] * style_scale ** 2
    smallest = min(h * w for h, w in style_sizes)
    k = min(1.0, math.sqrt(smallest / area))
    return max(1, round(output[0] * k)), max(1, round(output[1] * k))


def polish(prepared: Prepared, start: np.ndarray, source: np.ndarray, tiles: list[Tile],
           progress: Callback = ignore) -> np.ndarray:
    """start: the guided output (H, W, 3) float32 [0, 1]; source: the input at the same size;
    tiles: tile_plan's for (H, W) -> the polished output (H, W, 3) float32 [0, 1],
    settings.polish_iterations iterations per tile."""
    s, engine = prepared.settings, prepared.engine
    size = start.shape[:2]
    styles = prepared.styles
    targets = styles.targets(polish_style_size(size, [p.size for p in styles.pictures], s.style_scale))
    progress(Message(f"polish: {len(tiles)} tiles of {tiles[0][3]}x{tiles[0][2]} at {size[1]}x{size[0]}",
                     code="polish.tiles", fields={"tiles": len(tiles), "width": size[1], "height": size[0]}))

    def batch(chosen: list[Tile]) -> list[np.ndarray]:
        def crops(image: np.ndarray) -> torch.Tensor:
            return torch.stack([torch.from_numpy(np.ascontiguousarray(image[y:y + h, x:x + w])).permute(2, 0, 1)
                                for y, x, h, w in chosen]).float()
        init, content = crops(start), crops(source)
        if s.preserve_colors:  # as coarse_to_fine: the optimisation on luminance, the input's chroma put back
            init, content = luminance(init), luminance(content)
        result = optimise(engine, s, init, content, targets, iterations=s.polish_iterations, progress=progress)
        images = recombine(result.images, crops(source)) if s.preserve_colors else result.images
        return [to_rgb(image) for image in images]

    total = np.zeros((*size, 3), np.float32)
    weights = np.zeros((*size, 1), np.float32)
    limit = BatchLimit(image_batch(s))
    for chosen, painted in in_batches(tiles, limit, batch, device=engine.device, size=tiles[0][2:], what="tile",
                                      progress=progress):
        if isinstance(painted, OutOfMemory):
            raise painted
        for (y, x, h, w), image in zip(chosen, painted):
            weight = blend_weights((y, x, h, w), size)[..., None]
            total[y:y + h, x:x + w] += weight * image
            weights[y:y + h, x:x + w] += weight
    return np.clip(total / weights, 0.0, 1.0)


def deliver_still(prepared: Prepared, painted: Picture, source: Picture, progress: Callback = ignore) -> Picture:
    """A still stylised at the working size -> the output picture (deliver.deliver_picture), polished
    at the output size where --detail polish and the output is larger than the working size."""
    s = prepared.settings
    out = deliver_picture(painted, source, s.output_size, s.detail)
    tiles = polish_tiles(s, painted.size, out.size)
    if not tiles:
        return out
    content = np.clip(resized(np.ascontiguousarray(source.rgb, np.float32), out.size, cv2.INTER_CUBIC), 0.0, 1.0)
    return Picture(polish(prepared, out.rgb, content, tiles, progress), out.alpha, out.bit_depth, out.grayscale)
