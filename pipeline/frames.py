"""Conversions between media arrays and optimiser tensors, working sizes and starting images.

Media arrays: (H, W, 3) RGB, float32 in [0, 1] (pictures) or uint8 (video frames).
Tensors: (B, 3, H, W) float32 RGB in [0, 1].
"""
from __future__ import annotations

import numpy as np
import torch

from .media.images import Picture, read_image, resize_rgb, working_size
from .settings import Settings


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float32 [0, 1] -> (1, 3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()


def to_rgb(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) [0, 1] -> (H, W, 3) float32."""
    return image.permute(1, 2, 0).contiguous().numpy().astype(np.float32)


def to_u8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 [0, 1] -> uint8, rounded."""
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def to_float(rgb_u8: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> float32 [0, 1]."""
    return rgb_u8.astype(np.float32) / 255.0


def video_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """A video's working (h, w): working_size (the long side scaled to long_side, the short side at
    least MIN_SIDE), both even (yuv420p needs even sizes)."""
    h, w = working_size((height, width), long_side)
    return max(2, h - h % 2), max(2, w - w % 2)


def flow_source_size(width: int, height: int, working: tuple[int, int], settings: Settings) -> tuple[int, int]:
    """(w, h) to decode a video's frames at for the chain: settings.flow_scale times the working
    (h, w), never above the source's own width x height, even. The flow is computed there and
    brought down (video/plan.py): DIS at the working size misses thin and fast motion."""
    h, w = working
    scale = min(settings.flow_scale, width / w, height / h)
    if scale <= 1.0:
        return w, h
    return max(w, int(w * scale) // 2 * 2), max(h, int(h * scale) // 2 * 2)


def at_working_size(picture: Picture, long_side: int) -> Picture:
    """The picture resized to its working size working_size((H, W), long_side), alpha too; bit
    depth and grayscale flag kept. Images are optimised at this size, so a caller holding many
    pictures for a batch (the folder job) can hold them this small."""
    size = working_size(picture.size, long_side)
    alpha = None if picture.alpha is None else resize_rgb(picture.alpha[..., None], size)[..., 0]
    return Picture(resize_rgb(picture.rgb, size), alpha, picture.bit_depth, picture.grayscale)


def initial_images(settings: Settings, content: torch.Tensor) -> torch.Tensor:
    """--init content | noise | FILE for a content batch (B, 3, H, W) -> (B, 3, H, W) in [0, 1]."""
    spec = settings.init
    if spec == "content":
        return content.clone()
    if spec == "noise":
        gen = torch.Generator().manual_seed(settings.seed)
        return (0.5 + 0.15 * torch.randn(content.shape, generator=gen)).clamp(0, 1)
    picture = read_image(spec)
    rgb = resize_rgb(picture.rgb, tuple(content.shape[-2:]))
    return to_tensor(rgb).expand(content.shape[0], -1, -1, -1).clone()
