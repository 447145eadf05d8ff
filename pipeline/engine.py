"""Where the maths runs: device and precision choice, and the feature extractor built once per job.

--compile (Settings.compile) runs the optimiser's whole objective (network, Grams, losses) through
torch.compile (Engine.compiled_version). Compiling is an optimisation, never a reason for a job to
fail: if torch.compile raises, or the compiled objective fails at a call (no C++ compiler, a backend
that does not exist or cannot handle a shape), the engine falls back to eager for the rest of the job
and queues one warning (see Engine.report).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import torch

from .errors import UsageError
from .features import VGGFeatures, WeightSource, build_extractor
from .progress import Callback, Message, ignore
from .settings import CONTENT_LAYER, STYLE_LAYERS, Settings

# torch.compile backend for --compile; "inductor" unless this names another.  For tests and
# debugging: a name that does not exist forces the fallback to eager, "aot_eager" checks tracing only.
COMPILE_BACKEND_ENV = "NSTVID_COMPILE_BACKEND"
T = TypeVar("T")


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


# The --precision name of each autocast dtype pick_dtype returns (None: plain fp32).
DTYPE_NAMES: dict[torch.dtype | None, str] = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


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


def describe_failure(error: BaseException) -> str:
    """One line for a compile failure: the innermost cause (dynamo wraps backend errors), shortened."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = getattr(error, "inner_exception", None) or error.__cause__
        if inner is None:
            break
        error = inner
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


@dataclass
class Engine:
    """The extractor on its device plus the autocast policy. Build once, use for every frame.
    The job's settings are not here: they travel beside it (prepare.Prepared)."""

    device: torch.device
    dtype: torch.dtype | None
    extractor: VGGFeatures
    weights: WeightSource
    # The compiled objective while --compile is on and works; None: eager (or not compiled yet).
    compile: bool = False  # --compile: the objective through torch.compile
    compiled: Callable | None = None
    compile_failed: bool = False
    # Events for the job's callback, which the engine does not know (it is built before the job's
    # callback is passed around): handed over by report(), called from the optimiser loop.
    notices: list[Message] = field(default_factory=list)
    _said: set[str] = field(default_factory=set)

    @classmethod
    def create(cls, settings: Settings) -> "Engine":
        device = pick_device(settings.device)
        dtype = pick_dtype(settings.precision, device)
        layers = tuple(dict.fromkeys(STYLE_LAYERS + (CONTENT_LAYER,)))
        extractor, source = build_extractor(settings.weights, layers, settings.pooling, device)
        if dtype is not None:
            # The frozen conv weights in the compute dtype once: autocast casts weights that do not
            # require grad again at every call (its cast cache keeps only trainable leaves). The
            # pixels it computes are the same: it would round them to this dtype anyway.
            extractor.cast_weights(dtype)
        if device.type == "cuda":
            # A job's shapes repeat thousands of times: let cuDNN time its algorithms once per
            # shape. Grams and other fp32 matmuls on tensor cores (TF32), as fp32 convolutions
            # already are by torch's default.
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")
        return cls(device, dtype, extractor, source, compile=settings.compile)

    def notice_once(self, text: str) -> None:
        """Queue a warning for the job's callback, once per engine."""
        if text not in self._said:
            self._said.add(text)
            self.notices.append(Message(text, level="warning"))

    def compiled_version(self, fn: Callable[..., T]) -> Callable[..., T]:
        """fn through torch.compile when --compile is on and has not failed, else fn itself.

        One function is compiled per engine: the optimiser's objective, forward and backward.
        dynamic=None: the first shape is compiled for as it is (static), and a job that meets
        other sizes (coarse to fine, folders of mixed sizes) gets symbolic sizes from the second
        on, rather than a graph per shape. Default mode: VGG's time is in its convolutions, which
        stay cuDNN / oneDNN calls in every mode; "max-autotune" would autotune every shape for
        minutes, and "reduce-overhead" (CUDA graphs of its own) reuses output buffers that the
        optimiser's autograd graph holds (cuda_graphs.py captures whole iterations instead).
        """
        if not self.compile or self.compile_failed:
            return fn
        if self.compiled is None:
            backend = os.environ.get(COMPILE_BACKEND_ENV, "inductor")
            try:
                self.compiled = torch.compile(fn, backend=backend, dynamic=None)
            except Exception as e:  # noqa: BLE001 - whatever torch.compile raises, eager still works
                self._fall_back(e)
                return fn
        return self.compiled

    def _fall_back(self, error: BaseException) -> None:
        self.compiled, self.compile_failed = None, True
        self.notices.append(Message(f"--compile: compiling the network failed ({describe_failure(error)}); "
                                    "running uncompiled (eager) instead", level="warning"))

    def guarded(self, step: Callable[[], T]) -> T:
        """step() runs a forward and backward pass of the (compiled) objective; returns its result.

        If the compiled objective fails anywhere in it (forward, or the backward that torch compiles
        lazily at its first call), fall back to eager for the rest of the job and run step() again.
        Out of memory is not a compile failure: it propagates for the callers' batch halving.
        """
        if not self.compile or self.compile_failed:
            return step()
        try:
            return step()
        except torch.OutOfMemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - any compile or compiled-kernel failure
            self._fall_back(e)
            return step()

    def report(self, progress: Callback) -> None:
        """Hand queued notices to a job's callback.  Callers without one (progress is `ignore`, e.g. a
        batch-size trial) leave them queued for the next caller that has one."""
        if progress is ignore:
            return
        while self.notices:
            progress(self.notices.pop(0))

    @property
    def precision_name(self) -> str:
        return DTYPE_NAMES[self.dtype]

    def autocast(self):
        """Autocast for the VGG passes; Gram matrices and loss sums opt out (see losses.gram)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """RGB [0, 1] (B, 3, H, W) on any device -> activations of the style and content layers."""
        images = images.to(self.device)
        if self.device.type == "cuda":  # a no-op for the optimiser's images, kept channels-last
            images = images.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            return self.extractor(images)
