"""One frozen settings object: built from defaults, then a config file (or preset), then flags.

`Settings` says *what* to compute; it is hashed for the style-target cache, the video resume
directory and the folder manifest. How a run reports (quiet, log format, report path) is not part of
it and lives in the CLI.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_PRESET = "balanced"

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
# Where and how fast a result is computed, not what it is. Device, torch.compile and image batches
# change pixels by float rounding; video window batching and --devices pieces change frames within
# the flicker bounds measured in docs/batching.md. Finished files and resume folders ignore them, so
# an overnight job rerun on another machine or with other GPUs neither redoes nor discards work.
RUN_ONLY_FIELDS = ("device", "devices", "batch", "compile")


@dataclass(frozen=True)
class Settings:
    # Style
    styles: tuple[str, ...] = ()
    style_blend: tuple[float, ...] = ()  # empty: equal weights
    style_scale: float = 1.0

    # Working size and schedule
    size: int = 512  # long side of the output, px
    scales: int = 3  # coarse-to-fine levels, each half the size of the next
    iterations: int = 200  # per scale (first frame of a video, every image)
    tolerance: float = 1e-4  # relative loss change per iteration, averaged over 20, that stops early

    # Loss weights (see losses.py for the normalisation that makes them scale-free)
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 0.1
    style_layer_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)

    # Optimiser
    optimizer: str = "lbfgs"  # lbfgs | adam
    learning_rate: float = 0.02  # adam only; L-BFGS takes unit steps
    init: str = "content"  # content | noise | path to an image
    seed: int = 0
    preserve_colors: bool = False

    # Model and hardware
    weights: str = "embedded"  # embedded | torchvision | path to a torchvision-layout state dict
    pooling: str = "max"  # max | avg
    device: str = "auto"  # auto | cpu | cuda[:N] | mps
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    compile: bool = False  # torch.compile the feature extractor (falls back to eager if it fails)

    # Video
    frame_iterations: int = 60  # per later frame (warm-started), at full size only
    temporal_weight: float = 50.0  # at 512 px; losses.temporal_weight_at scales it up; 0 disables
    flow: bool = True  # False: plain unwarped warm start
    independent: bool = False  # every frame on its own (the flicker baseline)
    scene_cut_threshold: float = 0.35  # flow.SCENE_CUT_THRESHOLD: measured there on cuts vs motion
    crf: int = 18
    codec: str = "libx264"
    batch: int = 0  # frames per optimisation pass; 0: auto
    devices: tuple[str, ...] = ()  # video: one worker process per device (cuda:0,cuda:1,...)

    def validate(self) -> "Settings":
        """Raise UsageError naming the first bad value; return self for chaining."""
        if self.size < 16:
            raise UsageError(f"--size {self.size}: must be at least 16 px")
        if self.scales < 1:
            raise UsageError(f"--scales {self.scales}: must be at least 1")
        if self.iterations < 0 or self.frame_iterations < 0:
            raise UsageError("--iterations and --frame-iterations must not be negative")
        if self.optimizer not in ("lbfgs", "adam"):
            raise UsageError(f"--optimizer {self.optimizer!r}: expected lbfgs or adam")
        if self.pooling not in ("max", "avg"):
            raise UsageError(f"--pooling {self.pooling!r}: expected max or avg")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise UsageError(f"--precision {self.precision!r}: expected auto, fp32, bf16 or fp16")
        if self.style_scale <= 0:
            raise UsageError(f"--style-scale {self.style_scale}: must be positive")
        if self.style_blend:
            if len(self.style_blend) != len(self.styles):
                raise UsageError(
                    f"--style-blend has {len(self.style_blend)} weights for {len(self.styles)} styles")
            if any(w < 0 for w in self.style_blend) or sum(self.style_blend) <= 0:
                raise UsageError("--style-blend weights must be non-negative and not all zero")
        if len(self.style_layer_weights) != len(STYLE_LAYERS):
            raise UsageError(f"style_layer_weights needs {len(STYLE_LAYERS)} values")
        repeated = {d for d in self.devices if d != "cpu" and self.devices.count(d) > 1}
        if repeated:
            raise UsageError(f"--devices {','.join(self.devices)}: {', '.join(sorted(repeated))} "
                             "listed twice")
        if self.batch < 0:
            raise UsageError(f"--batch {self.batch}: must be 0 (auto) or positive")
        return self

    @property
    def blend_weights(self) -> tuple[float, ...]:
        """Style blend weights normalised to sum to 1."""
        raw = self.style_blend or (1.0,) * len(self.styles)
        total = sum(raw)
        return tuple(w / total for w in raw)

    def digest(self, *, exclude: tuple[str, ...] = ()) -> str:
        """A short stable hash of the settings (style *files* are hashed by content by callers)."""
        data = {k: v for k, v in dataclasses.asdict(self).items() if k not in exclude}
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """Content hash of a file (style images, inputs): what caches and manifests are keyed by."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


FIELD_TYPES = {f.name: f.type for f in fields(Settings)}


def _coerce(name: str, value: Any, source: str) -> Any:
    """Coerce a config/flag value to the field's type; raise UsageError naming the source."""
    default = getattr(Settings(), name)
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            kind = float if name in ("style_blend", "style_layer_weights") else str
            return tuple(kind(v) for v in items if str(v).strip() != "")
        return type(default)(value)
    except (TypeError, ValueError):
        raise UsageError(f"{source}: {name} = {value!r} is not a valid {type(default).__name__}") from None


def read_config(path: Path) -> dict[str, Any]:
    """Read a TOML config file into {field: value}; unknown keys are errors (typos must not pass)."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path}: not a readable TOML config ({e})") from None
    # A job file may group options in tables ([style], [video], ...): flatten them.
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    out = {}
    for key, value in flat.items():
        name = key.replace("-", "_")
        if name not in FIELD_TYPES and name not in EXTRA_CONFIG_KEYS:
            raise UsageError(f"{path}: unknown option {key!r}")
        out[name] = value if name in EXTRA_CONFIG_KEYS else _coerce(name, value, str(path))
    return out


# Keys a job file may hold that are run options rather than Settings (the CLI reads them).
EXTRA_CONFIG_KEYS = {"output", "overwrite", "quiet", "image_format", "report", "log_format",
                     "max_runtime", "keep_frames", "dry_run", "preset"}


def preset_path(name: str) -> Path:
    path = CONFIG_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
        raise UsageError(f"--preset {name}: no such preset (known: {', '.join(known)})")
    return path


def build_settings(config: Mapping[str, Any] | None = None,
                   flags: Mapping[str, Any] | None = None) -> Settings:
    """Defaults < config values < flags (flags whose value is None were not given)."""
    values: dict[str, Any] = {}
    for source, layer in (("config", config or {}), ("flags", flags or {})):
        for name, value in layer.items():
            if value is None or name not in FIELD_TYPES:
                continue
            values[name] = _coerce(name, value, source)
    return Settings(**values).validate()
