"""Where the maths runs: device and precision choice, and the feature extractor built once per job."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .errors import UsageError
from .features import VGGFeatures, WeightSource, build_extractor
from .settings import CONTENT_LAYER, STYLE_LAYERS, Settings


def pick_device(spec: str) -> torch.device:
    """--device auto|cpu|cuda[:N]|mps -> torch.device; UsageError when it is not there."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"--device {spec!r}: expected auto, cpu, cuda[:N] or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {spec}: MPS is not available on this machine")
    return device


def cpu_has_fast_bf16() -> bool:
    """AVX-512 BF16 or AMX: where bf16 autocast beats fp32 on the CPU (about 2x measured here)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def pick_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for --precision, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type == "cpu":
            raise UsageError("--precision fp16: not supported on the CPU (use bf16 or fp32)")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


@dataclass
class Engine:
    """The extractor on its device plus the autocast policy. Build once, use for every frame."""

    settings: Settings
    device: torch.device
    dtype: torch.dtype | None
    extractor: VGGFeatures
    weights: WeightSource

    @classmethod
    def create(cls, settings: Settings) -> "Engine":
        device = pick_device(settings.device)
        dtype = pick_dtype(settings.precision, device)
        layers = tuple(dict.fromkeys(STYLE_LAYERS + (CONTENT_LAYER,)))
        extractor, source = build_extractor(settings.weights, layers, settings.pooling, device)
        return cls(settings, device, dtype, extractor, source)

    @property
    def precision_name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        """Autocast for the VGG passes; Gram matrices and loss sums opt out (see losses.gram)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """RGB [0, 1] (B, 3, H, W) on any device -> activations of the style and content layers."""
        images = images.to(self.device)
        if self.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            return self.extractor(images)
