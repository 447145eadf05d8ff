"""Colour helpers for --preserve-colors (Gatys et al. 2016, "Preserving color in neural artistic
style transfer", luminance-only transfer). Images are (B, 3, H, W) RGB in [0, 1].

Departure from the paper: the style's luminance is not histogram-matched to the content's, so the
style targets stay independent of the content and are cached once per style.
"""
from __future__ import annotations

import torch

# ITU-R BT.601 luma and the matching YCbCr chroma axes.
_LUMA = (0.299, 0.587, 0.114)


def _luma(images: torch.Tensor) -> torch.Tensor:
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    return _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b


def luminance(images: torch.Tensor) -> torch.Tensor:
    """Grey version (B, 3, H, W) with R = G = B = luma."""
    return _luma(images).expand(-1, 3, -1, -1).contiguous()


def recombine(luma_source: torch.Tensor, chroma_source: torch.Tensor) -> torch.Tensor:
    """Luma of the first, chroma (Cb, Cr) of the second -> RGB (B, 3, H, W), clamped to [0, 1]."""
    y = _luma(luma_source)
    y_c = _luma(chroma_source)
    cb = (chroma_source[:, 2:3] - y_c) * 0.564
    cr = (chroma_source[:, 0:1] - y_c) * 0.713
    r = y + 1.403 * cr
    b = y + 1.773 * cb
    g = (y - _LUMA[0] * r - _LUMA[2] * b) / _LUMA[1]
    return torch.cat([r, g, b], 1).clamp(0.0, 1.0)
