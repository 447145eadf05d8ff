"""What a job computes (`Settings`) and how it runs (`RunOptions`): two frozen objects, each built
from defaults, then a preset, then a config file, then flags or keywords (`load`).

`Settings` is hashed for the style-target cache, the video resume directory and the folder manifest.
`RunOptions` (output, reporting, limits) never changes a pixel and is not hashed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError

DEFAULT_PRESET = "balanced"

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
# Where and how fast a result is computed, not what it is. Device, torch.compile and image batches
# change pixels by float rounding; video window batching and --devices pieces change frames within
# the flicker bounds measured in docs/batching.md. Finished files and resume folders ignore them, so
# an overnight job rerun on another machine or with other GPUs neither redoes nor discards work.
RUN_ONLY_FIELDS = ("device", "devices", "batch", "compile")
# Defaults that changed, as (field, new default, old default), each chosen at equal or better
# quality than the old (frame_iterations: docs/frame_cost.md; revealed, settle_iterations:
# docs/temporal.md section 5). A video finished, or half done, under old defaults is kept: the
# manifest and the resume folder accept the digest of earlier_forms too.
CHANGED_DEFAULTS = (("frame_iterations", 30, 60), ("revealed", "inpaint", "content"), ("settle_iterations", 30, 0))
# Fields added later, with the value that does what the versions before them did: a digest leaves
# such a field out at that value, so work recorded before it existed still matches.
ADDED_FIELDS = {"flow_scale": 1.0, "flow_check": 0.0, "warp_interpolation": "linear", "settle_iterations": 0}


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
    strength: float = 0.5  # 0-1: how strongly the style pulls (losses.style_weight_at)
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
    frame_iterations: int = 30  # per later frame (warm-started), at full size only (docs/frame_cost.md)
    temporal_weight: float = 50.0  # at 512 px; losses.temporal_weight_at scales it up; 0 disables
    flow: bool = True  # False: plain unwarped warm start
    revealed: str = "inpaint"  # what newly revealed pixels start from: content | inpaint | warp (docs/temporal.md)
    flow_scale: float = 1.0  # flow computed on frames this many times the working size (capped at the source)
    flow_check: float = 0.0  # 0-255: distrust the warp where the warped previous input differs by more; 0: off
    warp_interpolation: str = "linear"  # how the previous output is warped: linear | cubic | lanczos
    settle_iterations: int = 30  # a chain's full frame ends with this many (at most frame_iterations) as later frames get
    independent: bool = False  # every frame on its own (the flicker baseline)
    scene_cut_threshold: float = 0.35  # flow.SCENE_CUT_THRESHOLD: measured there on cuts vs motion
    crf: int = 18
    codec: str = "libx264"
    batch: int = 0  # frames per optimisation pass; 0: auto
    devices: tuple[str, ...] = ()  # video: one worker process per device (cuda:0,cuda:1,...)

    def validate(self) -> "Settings":
        """Raise UsageError naming the first bad value; return self for chaining."""
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"--strength {self.strength:g}: must be between 0 and 1")
        if self.size < 16:
            raise UsageError(f"--size {self.size}: must be at least 16 px")
        if self.scales < 1:
            raise UsageError(f"--scales {self.scales}: must be at least 1")
        if self.iterations < 0 or self.frame_iterations < 0:
            raise UsageError("--iterations and --frame-iterations must not be negative")
        if self.optimizer not in ("lbfgs", "adam"):
            raise UsageError(f"--optimizer {self.optimizer!r}: expected lbfgs or adam")
        if self.revealed not in ("content", "inpaint", "warp"):
            raise UsageError(f"revealed {self.revealed!r}: expected content, inpaint or warp")
        if self.warp_interpolation not in ("linear", "cubic", "lanczos"):
            raise UsageError(f"warp_interpolation {self.warp_interpolation!r}: expected linear, cubic or lanczos")
        if self.flow_scale < 1 or self.flow_check < 0 or self.settle_iterations < 0:
            raise UsageError("flow_scale must be at least 1; flow_check and settle_iterations not negative")
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
        data = {k: v for k, v in dataclasses.asdict(self).items()
                if k not in exclude and not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])}
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def earlier_forms(settings: Settings) -> list[Settings]:
    """The same settings as earlier versions recorded them: each combination of the changed
    defaults they keep, set back to the old value (a version may predate several changes)."""
    kept = [(name, old) for name, new, old in CHANGED_DEFAULTS if getattr(settings, name) == new]
    return [dataclasses.replace(settings, **dict(combo))
            for n in range(1, len(kept) + 1) for combo in itertools.combinations(kept, n)]


def file_sha256(path: str | Path) -> str:
    """Content hash of a file (style images, inputs): what caches and manifests are keyed by."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class RunOptions:
    """How a job runs and reports; never changes a result, so never hashed."""

    output: str | None = None  # file, or folder for a folder input; None: beside the input
    overwrite: bool = False  # replace an existing output file (folders: outputs this job did not make)
    keep_frames: bool = False  # video: keep the resume work folder after success
    quiet: bool = False  # errors only
    log_format: str = "auto"  # auto (bar on a terminal, lines otherwise) | plain | json
    image_format: str = "png"  # folder: output image format
    report: str | None = None  # folder: JSON report path
    max_runtime: float | None = None  # folder: seconds after which no new file starts
    dry_run: bool = False  # say what would be done, do nothing
    start: str | None = None  # video: where the part to stylise starts (1:30, 90s, 120f)
    duration: str | None = None  # video: how long it is (20s, 48f)
    end: str | None = None  # video: where it ends, or give duration
    preview: int = 0  # video / folder: stylise this many frames or images onto a sheet, then stop
    preview_strengths: tuple[float, ...] = ()  # one sheet row per strength (--strength 0.3,0.6,0.9)
    engine: str = "local"  # local | ray: a folder, video or image on a Ray cluster's workers
    ray_address: str = "auto"  # auto: the cluster `ray start` set up | local: a private one | HOST:PORT
    ray_workers: int = 0  # Ray actors; 0: one per GPU (CPU-only cluster: one per 4 CPUs)

    def validate(self) -> "RunOptions":
        if self.log_format not in ("auto", "plain", "json"):
            raise UsageError(f"--log-format {self.log_format!r}: expected auto, plain or json")
        if self.max_runtime is not None and self.max_runtime < 0:
            raise UsageError(f"--max-runtime {self.max_runtime:g}: must not be negative")
        if self.duration is not None and self.end is not None:
            raise UsageError("--duration and --end both given: give one of them")
        for option, text in (("--start", self.start), ("--duration", self.duration), ("--end", self.end)):
            parse_point(text, option)
        if self.engine not in ("local", "ray"):
            raise UsageError(f"--engine {self.engine!r}: expected local or ray")
        if self.ray_workers < 0:
            raise UsageError(f"--ray-workers {self.ray_workers}: must be 0 (one per GPU) or positive")
        if self.preview < 0:
            raise UsageError(f"--preview {self.preview}: must be a positive number of pictures")
        for strength in self.preview_strengths:
            if not 0.0 <= strength <= 1.0:
                raise UsageError(f"--strength {strength:g}: must be between 0 and 1")
        return self


SETTINGS_FIELDS = {f.name for f in fields(Settings)}
RUN_FIELDS = {f.name for f in fields(RunOptions)}


def parse_duration(text: Any, option: str = "--max-runtime") -> float | None:
    """'90s', '45m', '6h', '1.5h', '1d', '1:30' (m:s), '1:02:03' (h:m:s) or plain seconds ->
    seconds; None or '' stays None. Negative is an error."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        text = str(text).strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            if ":" in text:
                parts = [float(p) for p in text.split(":")]
                if len(parts) > 3 or any(p < 0 for p in parts[1:]) or any(p >= 60 for p in parts[1:]):
                    raise ValueError(text)
                seconds = sum(p * 60 ** k for k, p in enumerate(reversed(parts)))
            elif text and text[-1] in units:
                seconds = float(text[:-1]) * units[text[-1]]
            else:
                seconds = float(text)
        except ValueError:
            raise UsageError(f"{option} {text!r}: expected a duration like 90s, 1:30, 45m or 6h") from None
    if seconds < 0 or seconds != seconds:
        raise UsageError(f"{option} {text!r}: must not be negative")
    return seconds


def parse_point(text: Any, option: str) -> tuple[float, bool] | None:
    """A place or length in a video: a time (parse_duration's forms) -> (seconds, False), or a
    frame count '120f' -> (120, True); None stays None."""
    if text is None or text == "":
        return None
    value = str(text).strip().lower()
    if value.endswith("f"):
        try:
            frames = int(value[:-1])
        except ValueError:
            raise UsageError(f"{option} {text!r}: expected a frame count like 120f") from None
        if frames < 0:
            raise UsageError(f"{option} {text!r}: must not be negative")
        return float(frames), True
    return parse_duration(value, option), False


def _coerce(cls: type, name: str, value: Any, source: str) -> Any:
    """Coerce a config / flag / keyword value to the type of cls's field; UsageError names the source."""
    if name == "max_runtime":
        return parse_duration(value)
    default = getattr(cls(), name)
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
            kind = float if name in ("style_blend", "style_layer_weights", "preview_strengths") else str
            return tuple(kind(v) for v in items if str(v).strip() != "")
        if default is None:
            return str(value)
        return type(default)(value)
    except (TypeError, ValueError):
        kind = type(default).__name__ if default is not None else "path"
        raise UsageError(f"{source}: {name} = {value!r} is not a valid {kind}") from None


def read_config(path: Path | str) -> dict[str, Any]:
    """Read a TOML job file into {key: value}; unknown keys are errors (typos must not pass).

    Keys are Settings fields, RunOptions fields, or `preset`. Tables ([style], [video], ...) are
    flattened. Values are coerced to their field's type here, so a bad one names this file.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path}: not a readable TOML config ({e})") from None
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    out: dict[str, Any] = {}
    for key, value in flat.items():
        name = key.replace("-", "_")
        if name == "preset":
            out[name] = str(value)
        elif name in SETTINGS_FIELDS:
            out[name] = _coerce(Settings, name, value, str(path))
        elif name in RUN_FIELDS:
            out[name] = _coerce(RunOptions, name, value, str(path))
        else:
            raise UsageError(f"{path}: unknown option {key!r}")
    return out


def presets() -> dict[str, Path]:
    """{name: file} of the presets shipped inside the installed package (nstvid/configs/*.toml)."""
    folder = resources.files(__package__.rpartition(".")[0] or __package__) / "configs"
    return {Path(entry.name).stem: Path(str(entry)) for entry in folder.iterdir()
            if entry.name.endswith(".toml") and entry.name != "overnight.toml"}


def preset_values(name: str) -> dict[str, Any]:
    """The values of a named preset; UsageError naming the known ones otherwise."""
    known = presets()
    if name not in known:
        raise UsageError(f"--preset {name}: no such preset (known: {', '.join(sorted(known))})")
    return read_config(known[name])


def load(values: Mapping[str, Any] | None = None, *, preset: str | None = None,
         config: Path | str | None = None) -> tuple[Settings, RunOptions]:
    """Defaults < preset < config file < values (flags or API keywords; None means not given).

    The preset is `preset`, else the one the config file names, else balanced. Unknown names in
    `values` are a UsageError, as unknown keys in a file are.
    """
    file_values = read_config(config) if config is not None else {}
    layers: dict[str, Any] = preset_values(preset or file_values.get("preset") or DEFAULT_PRESET)
    layers.update(file_values)
    given = {k: v for k, v in (values or {}).items() if v is not None}
    unknown = sorted(set(given) - SETTINGS_FIELDS - RUN_FIELDS)
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r} (options are the config keys, e.g. size, "
                         "style_weight, frame_iterations)")
    for name, value in given.items():
        layers[name] = _coerce(Settings if name in SETTINGS_FIELDS else RunOptions, name, value, "options")
    settings = Settings(**{k: v for k, v in layers.items() if k in SETTINGS_FIELDS}).validate()
    options = RunOptions(**{k: v for k, v in layers.items() if k in RUN_FIELDS}).validate()
    return settings, options
