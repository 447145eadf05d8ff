"""Stylise still images: one file, or a batch of pictures that share a working size."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .engine import Engine
from .errors import OutputError, UsageError
from .media.images import Picture, check_writable_folder, fit_long_side, read_image, resize_rgb, write_image
from .optimize import Result, stylise
from .progress import Callback, Message, ignore
from .style_targets import StyleSet


def default_output(input_path: Path, styles: tuple[str, ...], suffix: str = ".png") -> Path:
    """photo.jpg + starry.jpg -> photo_starry.png beside the input (styles joined with '+')."""
    tag = "+".join(Path(s).stem for s in styles)
    return input_path.with_name(f"{input_path.stem}_{tag}{suffix}")


def check_output(input_path: Path, output_path: Path, overwrite: bool) -> None:
    """Refuse outputs that would destroy data or cannot be written, before any work is done."""
    if output_path.resolve() == input_path.resolve():
        raise OutputError(output_path, "output path is the input file; choose another -o")
    if output_path.exists() and not overwrite:
        raise OutputError(output_path, "output exists (pass --overwrite to replace it)")
    if output_path.is_dir():
        raise OutputError(output_path, "output path is a folder")
    check_writable_folder(output_path.parent)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float32 [0, 1] -> (1, 3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()


def to_rgb(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) [0, 1] -> (H, W, 3) float32."""
    return image.permute(1, 2, 0).contiguous().numpy().astype(np.float32)


def initial_images(engine: Engine, content: torch.Tensor) -> torch.Tensor:
    """--init content | noise | FILE for a content batch (B, 3, H, W)."""
    spec = engine.settings.init
    if spec == "content":
        return content.clone()
    if spec == "noise":
        gen = torch.Generator().manual_seed(engine.settings.seed)
        return (0.5 + 0.15 * torch.randn(content.shape, generator=gen)).clamp(0, 1)
    picture = read_image(spec)
    rgb = resize_rgb(picture.rgb, tuple(content.shape[-2:]))
    return to_tensor(rgb).expand(content.shape[0], -1, -1, -1).clone()


@dataclass
class ImageOutcome:
    output: Path
    content_loss: float
    style_loss: float
    iterations: int
    seconds: float


def to_working_size(picture: Picture, long_side: int) -> Picture:
    """The picture (H, W, 3) resized to its working size (h, w) = fit_long_side((H, W), long_side),
    alpha (H, W) too; bit depth and grayscale flag kept.  stylise_pictures works at this size, so
    a caller holding many pictures for a batch (the folder job) can hold them this small."""
    size = fit_long_side(picture.size, long_side)
    alpha = None if picture.alpha is None else resize_rgb(picture.alpha[..., None], size)[..., 0]
    return Picture(resize_rgb(picture.rgb, size), alpha, picture.bit_depth, picture.grayscale)


def stylise_pictures(engine: Engine, styles: StyleSet, pictures: list[Picture],
                     progress: Callback = ignore) -> tuple[list[Picture], Result]:
    """Stylise pictures of one working size as one batch; alpha and bit depth are carried over.

    pictures: B pictures whose sizes all fit --size to the same (h, w).  Returns B pictures of
    (h, w) and the batch's Result (per-sample losses of shape (B,)).
    """
    s = engine.settings
    size = fit_long_side(pictures[0].size, s.size)
    if any(fit_long_side(p.size, s.size) != size for p in pictures):
        raise UsageError("a batch must share one working size")
    pictures = [to_working_size(p, s.size) for p in pictures]  # no copy for those already there
    content = torch.cat([to_tensor(p.rgb) for p in pictures])
    computed_before = styles.computed
    result = stylise(engine, styles, content, initial_images(engine, content),
                     iterations=s.iterations, scales=s.scales, progress=progress)
    fresh = styles.computed - computed_before
    progress(Message("style targets: computed" if fresh else "style targets: cached"))
    out = [Picture(to_rgb(image), picture.alpha, picture.bit_depth, False)
           for picture, image in zip(pictures, result.images)]
    return out, result


def stylise_file(engine: Engine, styles: StyleSet, input_path: Path, output_path: Path, *,
                 overwrite: bool = False, progress: Callback = ignore) -> ImageOutcome:
    """Read, stylise and atomically write one image."""
    started = time.perf_counter()
    check_output(input_path, output_path, overwrite)
    picture = read_image(input_path)
    (styled,), result = stylise_pictures(engine, styles, [picture], progress)
    write_image(output_path, styled)
    return ImageOutcome(output_path, float(result.content[0]), float(result.style[0]),
                        result.iterations, time.perf_counter() - started)
