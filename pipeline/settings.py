"""What a job computes (`Settings`) and how it runs (`RunOptions`): two frozen objects, each built
from defaults, then a preset, then a config file, then flags or keywords (`load`).

`Settings` is hashed for the style-target cache, the video resume directory and the folder manifest.
`RunOptions` (output, reporting, limits) never changes a pixel and is not hashed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import InputError, UsageError
from .files import file_sha256
from .values import output_long_side, parse_duration, parse_point

DEFAULT_PRESET = "balanced"
PREVIEW_COUNT = 3  # pictures on a preview sheet when --preview comes without a number

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
# The smallest side VGG19 takes up to relu5_1, the deepest layer used: four 2x2 max-pools of stride
# 2 come before it (torchvision's features 4, 9, 18, 27), so a side under 2**4 px pools to nothing
# ("Output size is too small"). tests/test_day_one.py runs the network at it and one below.
MIN_SIDE = 16
# The results a field can change, narrowest first. Each field names the first it changes (default
# "image"); a change to style targets changes every image and video made with them, and so on down,
# so a digest of one result (Settings.digest) covers the fields of that result and those before it.
# A still as delivered (STILL: the polish, which runs at the output size) branches off "image": its
# digest covers "image" and those before it, and no video frame's covers it.
# Fields that change nothing ("nothing": where and how fast the work runs) are in no digest. Device,
# torch.compile and image batches change pixels by float rounding only; video window batching and
# --devices pieces change frames within the flicker bounds measured in docs/batching.md. So an
# overnight job rerun on another machine or with other GPUs neither redoes nor discards work.
RESULTS = ("style_targets", "image", "video_frames", "video")
STILL = "still"
NOTHING = "nothing"
# The image formats a folder job writes (--image-format), each with the file extensions it is read
# from: the one list media/images.py (IMAGE_EXTENSIONS) and the option take theirs from.
IMAGE_FORMATS = {"png": ("png",), "jpg": ("jpg", "jpeg"), "webp": ("webp",), "tiff": ("tiff", "tif"),
                 "bmp": ("bmp",)}


# How a painting made at the working size reaches the output size (deliver.py and polish.py say
# what each does).
DETAIL_STEPS = ("guided", "resize", "polish")
# --detail polish's tiles overlap by at least this many px, blended linearly across it: wider than
# a stroke at the output size, so a stroke cut by one tile's edge is finished by its neighbour's.
POLISH_OVERLAP = 64


def image_format(value: Any) -> str:
    """--image-format's parser: 'JPEG', '.jpg' -> 'jpg' (a name outside IMAGE_FORMATS is left for
    validate() to refuse)."""
    text = str(value).strip().lower().lstrip(".")
    return next((name for name, extensions in IMAGE_FORMATS.items() if text in extensions), text)


def follow_light_model(value: Any) -> str:
    """follow_light's parser: true / false (a config from when it was a switch) -> 'gain' / 'off'."""
    return {True: "gain", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


# Help panels of `nstvid --help`, in their order there.
INPUT_OUTPUT, LOOK, VIDEO, PERFORMANCE, CLUSTER, JOB_CONTROL = (
    "Input and output", "Look", "Video", "Performance", "Cluster", "Job control")
PANELS = (INPUT_OUTPUT, LOOK, VIDEO, PERFORMANCE, CLUSTER, JOB_CONTROL)


@dataclass(frozen=True)
class Flag:
    """A field's command-line form. Each option is declared once, as a field of Settings or
    RunOptions with a Flag; the CLI's options, the API's keywords and the config keys all come
    from those fields, and the help shows the field's default."""

    help: str
    panel: str
    names: tuple[str, ...] = ()  # flag names; empty: --field-name
    sets: Any = None  # a switch (a flag without a value) sets the field to this; None: takes a value
    kind: Any = None  # what the flag parses where it differs from the field's type (lists: str)
    choices: tuple[str, ...] = ()  # the field's choices, which the help lists as its value
    value_name: str = ""  # what the help calls the value (--output PATH); "": from its type

    def flag_names(self, field_name: str) -> tuple[str, ...]:
        return self.names or ("--" + field_name.replace("_", "-"),)

    def metavar(self, default: Any) -> str:
        """The value's name in the help, as command lines write it: none for a switch, the choices
        ([auto|plain|json]), value_name, else the type's (kind's, or the default's): INTEGER, FILE..."""
        if self.sets is not None:
            return ""
        if self.choices:
            return "[" + "|".join(self.choices) + "]"
        if self.value_name:
            return self.value_name
        kind = self.kind or type(default)
        return {int: "INTEGER", float: "NUMBER", Path: "FILE", list[Path]: "FILE"}.get(kind, "TEXT")


def option(default: Any, help: str, panel: str, *names: str, sets: Any = None, kind: Any = None,
           changes: str = "image", choices: Sequence[str] = (), parse: Any = None, value_name: str = "") -> Any:
    """A field with a command-line flag (see Flag) that changes `changes` (see RESULTS).

    choices: the values allowed (validate() refuses others; the help lists them as the value).
    parse: turns a config, flag or keyword value into the field's value (default: by the
    default's type; a tuple's items are str unless parse is given for them, e.g. float).
    value_name: what the help calls the value, where its type says too little (PATH, DURATION)."""
    flag = Flag(help, panel, names, sets, kind, tuple(choices), value_name)
    return dataclasses.field(default=default, metadata={"flag": flag, "changes": changes,
                                                        "choices": tuple(choices), "parse": parse})


def setting(default: Any, changes: str = NOTHING, choices: Sequence[str] = (), parse: Any = None) -> Any:
    """A field without a flag (config files and the API only) that changes `changes`; choices and
    parse as option's."""
    return dataclasses.field(default=default, metadata={"changes": changes, "choices": tuple(choices),
                                                        "parse": parse})


def _words(choices: Sequence[str]) -> str:
    """('a', 'b', 'c') -> 'a, b or c'."""
    return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else "".join(choices)


def check_choices(values: Any) -> None:
    """UsageError naming the first field of `values` (a Settings or RunOptions) whose value is not
    one of its declared choices (by its flag where it has one)."""
    for f in fields(values):
        allowed = f.metadata.get("choices")
        value = getattr(values, f.name)
        if allowed and value not in allowed:
            name = f.metadata["flag"].flag_names(f.name)[0] if "flag" in f.metadata else f.name
            raise UsageError(f"{name} {value!r}: expected {_words(allowed)}")


def changes(field: dataclasses.Field) -> str:
    """The first result (RESULTS, or STILL) that `field` of Settings changes, or NOTHING."""
    return field.metadata.get("changes", "image")


@dataclass(frozen=True)
class Settings:
    # Style
    styles: tuple[str, ...] = option((), "Style image; repeat to blend several.", INPUT_OUTPUT,
                                     "--style", "-s", kind=list[Path], changes="style_targets")
    style_blend: tuple[float, ...] = option((), "Blend weights for the styles, e.g. 0.7,0.3 (none: equal).",
                                            LOOK, kind=str, changes="style_targets", parse=float,
                                            value_name="WEIGHTS")
    style_scale: float = option(1.0, "Style size relative to the content (1 = same area).", LOOK,
                                changes="style_targets")

    # Working size and schedule
    size: int = option(512, "Working size: the long side in px the painting is made at, and so the size of "
                            "its strokes (the output is --output-size).", LOOK)
    output_size: int | None = option(None, "Long side of the output in px, or source: the input's own size, "
                                           "as when not given.", INPUT_OUTPUT, kind=str, parse=output_long_side,
                                     value_name="PX|source")
    detail: str = option("guided", "How the painting reaches the output size (guided: Lanczos plus the input's "
                                   "fine detail where the painting follows its edges; resize: Lanczos alone; "
                                   "polish: guided, then iterations at the output size in tiles, for stills, "
                                   "slow: the network runs at the output size; video frames take guided).", LOOK,
                         choices=DETAIL_STEPS)
    # --detail polish: iterations per tile at the output size, and the tiles' side in px (the
    # network's memory at any output size; the tile plan depends on it and the output size only).
    polish_iterations: int = setting(20, STILL)
    polish_tile: int = setting(512, STILL)
    scales: int = option(3, "Coarse-to-fine levels, each half the size of the next.", LOOK)
    iterations: int = option(200, "Optimiser iterations per scale (images, a video's first frame).", LOOK)
    tolerance: float = option(1e-4, "Stop early below this relative loss change per iteration "
                                    "(averaged over 20).", LOOK)

    # Loss weights (see losses.py for the normalisation that makes them scale-free)
    strength: float = option(0.5, "How strongly the style pulls, 0-1 (0.5: --style-weight as is); "
                                  "with --preview, several: 0.3,0.6,0.9.", LOOK, kind=str, value_name="NUMBER")
    content_weight: float = option(1.0, "Weight of the content loss (relu4_2).", LOOK)
    style_weight: float = option(10.0, "Weight of the Gram style loss (relu1_1..relu5_1).", LOOK)
    tv_weight: float = option(0.1, "Weight of the total-variation smoothness loss.", LOOK)
    style_layer_weights: tuple[float, ...] = setting((1.0, 1.0, 1.0, 1.0, 1.0), "image", parse=float)

    # Optimiser
    optimizer: str = option("lbfgs", "The optimiser.", LOOK, choices=("lbfgs", "adam"))
    learning_rate: float = 0.02  # adam only; L-BFGS takes unit steps
    init: str = option("content", "Start image: content | noise | FILE.", LOOK, value_name="START")
    seed: int = option(0, "Random seed (noise init).", LOOK)
    preserve_colors: bool = option(False, "Keep the content's colours (luminance-only transfer).", LOOK,
                                   sets=True, changes="style_targets")

    # Model and hardware
    weights: str = option("embedded", "VGG19 weights: embedded | torchvision | PATH to a state dict.", LOOK,
                          changes="style_targets", value_name="SOURCE")
    pooling: str = option("max", "Pooling in VGG19.", LOOK, changes="style_targets", choices=("max", "avg"))
    device: str = option("auto", "auto | cpu | cuda[:N] | mps.", PERFORMANCE, changes=NOTHING, value_name="DEVICE")
    precision: str = option("auto", "Autocast precision (Grams stay fp32).", PERFORMANCE,
                            changes="style_targets", choices=("auto", "fp32", "bf16", "fp16"))
    compile: bool = option(False, "torch.compile the objective (falls back to eager with a warning).",
                           PERFORMANCE, sets=True, changes=NOTHING)

    # Video
    frame_iterations: int = option(30, "Video: iterations for each warm-started frame, at full size "
                                       "only (docs/frame_cost.md).", VIDEO, changes="video_frames")
    temporal_weight: float = option(50.0, "Video: weight of the temporal loss at 512 px, scaled by "
                                          "(size/512)^2 above (0 disables).", VIDEO, changes="video_frames")
    flow: bool = option(True, "Video: warm start from the previous output without warping.", VIDEO,
                        "--no-flow", sets=False, changes="video_frames")
    # What newly revealed pixels start from: content | inpaint | warp (docs/temporal.md).
    revealed: str = setting("inpaint", "video_frames", choices=("content", "inpaint", "warp"))
    # Flow computed on frames this many times the working size (capped at the source).
    flow_scale: float = setting(1.0, "video_frames")
    # 0-255: distrust the warp where the warped previous input differs by more; 0: off.
    flow_check: float = setting(0.0, "video_frames")
    # How the previous output is warped: linear | cubic | lanczos. Lanczos (8x8) keeps the strokes
    # that bilinear blurs a little at every frame (docs/motion.md).
    warp_interpolation: str = setting("lanczos", "video_frames", choices=("linear", "cubic", "lanczos"))
    # The DIS flow's preset (flow.DIS_PRESETS): ultrafast | fast | medium | fine.
    flow_preset: str = setting("medium", "video_frames", choices=("ultrafast", "fast", "medium", "fine"))
    # Weight of the temporal term on the fine scales (the warped difference minus its Gaussian
    # low pass of temporal_sigma px), against 1 on the coarse: 1 holds every scale alike
    # (Ruder et al.), lower lets the style term re-sharpen the strokes each warp blurs.
    temporal_detail: float = setting(0.2, "video_frames")
    temporal_sigma: float = setting(1.0, "video_frames")
    # The carried painting follows the footage's change of light along the flow, neither held nor a
    # pop: off | offset (ReCoNet: plus the luma change) | gain (times the luma ratio; video/chain.py).
    follow_light: str = setting("gain", "video_frames", choices=("off", "offset", "gain"), parse=follow_light_model)
    # The gain's power: 0.5, about what a painting made from scratch takes (0.42 of a 0.7 dimming);
    # at 1 it drifted back 3% of the change a frame, after light_join's change 2.77x its median pair.
    follow_light_share: float = setting(0.5, "video_frames")
    # Distrust the warp on motion boundaries as well as where it is disoccluded (Ruder et al.'s two
    # tests). Off by default, where we depart from Ruder et al.: DIS's flow on film grain fails the
    # boundary test on 6-15% of friday_film's pixels a frame (0.3-0.6% on water_handheld), and those
    # pixels were repainted every frame, so a grainy shot boiled (the shot after cut_join's cut: 2.51x
    # its own median pair with the test, 1.61x without; docs/motion.md).
    motion_boundaries: bool = setting(False, "video_frames")
    # A chain's full frame ends with this many iterations (at most frame_iterations) as later frames get.
    settle_iterations: int = setting(30, "video_frames")
    independent: bool = option(False, "Video: stylise every frame on its own (flicker baseline).", VIDEO,
                               sets=True, changes="video_frames")
    # Histogram distance (flow.scene_cut_score) above which a frame starts a new shot. Measured
    # on the repo's test data and the shared clips (tests/test_flow.py checks these):
    #   Sintel alley_2 frame 2 -> 3 (camera + character motion):       0.023
    #   pan.mp4 / orbit.mp4 consecutive frames (pan, zoom, rotation):  max 0.059
    #   pan.mp4 / orbit.mp4 frames one second (25 frames) apart:       max 0.082
    #   the shared clips' first 48 pairs; a frame times 0.5-1.5:      max 0.200 (flicker); 0.147
    #   unrelated shots (Sintel, coffee, astronaut, cat photos/clips): min 0.61, mostly 0.64-0.86
    # 0.35: ~6x over consecutive-frame motion, 1.75x over film flicker, ~1.7x under unrelated shots.
    scene_cut_threshold: float = setting(0.35, "video_frames")
    # Frames per segment (video/pieces.py): the unit that is dispatched, encoded, stored and resumed,
    # and what a lost Ray worker costs at most. Each segment is an encode of its own, so a join is a
    # keyframe: measured (docs/cluster.md), the pair across a join has about 2x the E_warp of its
    # neighbours on realshort at 512 px, 4-6x on a stylised clip at 64 px. 240 frames keep those
    # pulses as rare as x264's own keyframes (keyint 250) in one encode; at the balanced schedule on
    # an H200 (~2 frames/s at 512 px) that is about 2 minutes of work, which dispatch, storing and
    # the join do not notice. The anchor's rounding to uint8 at a join moves later frames by under
    # a level (tests/test_segments.py): hence a result of its own ("video_frames").
    segment_frames: int = setting(240, "video_frames")
    crf: int = option(18, "Video: encoder quality (lower is better; x264/x265: 0-51).", VIDEO, changes="video")
    # auto is resolved to the output container's encoder before work (api.load_job), so that a
    # digest names the encoder that made the file: libx264 for .mp4, as before auto.
    codec: str = option("auto", "Video: ffmpeg encoder (auto: the output container's, libx264 in .mp4, "
                                "libvpx-vp9 in .webm).", VIDEO, changes="video")
    batch: int = option(0, "Frames or images per optimisation pass (0: auto).", PERFORMANCE, changes=NOTHING)
    devices: tuple[str, ...] = option((), "Video: one worker per device, e.g. cuda:0,cuda:1.", PERFORMANCE,
                                      kind=str, changes=NOTHING, value_name="DEVICES")

    def validate(self) -> "Settings":
        """Raise UsageError naming the first bad value; return self for chaining."""
        if not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"--strength {self.strength:g}: must be between 0 and 1")
        if self.size < 16:
            raise UsageError(f"--size {self.size}: must be at least 16 px")
        if self.polish_iterations < 1 or self.polish_tile < 2 * POLISH_OVERLAP:
            raise UsageError(f"polish_iterations must be at least 1, polish_tile at least {2 * POLISH_OVERLAP} px")
        if self.output_size is not None and self.output_size < 2:
            raise UsageError(f"--output-size {self.output_size}: must be source or at least 2 px")
        if self.scales < 1:
            raise UsageError(f"--scales {self.scales}: must be at least 1")
        if self.iterations < 0 or self.frame_iterations < 0:
            raise UsageError("--iterations and --frame-iterations must not be negative")
        check_choices(self)  # optimizer, pooling, precision, revealed, warp_interpolation, flow_preset
        if self.segment_frames < 1:
            raise UsageError(f"segment_frames {self.segment_frames}: must be at least 1")
        if not (0 <= self.temporal_detail <= 1 and 0 <= self.follow_light_share <= 1) or self.temporal_sigma <= 0:
            raise UsageError("temporal_detail and follow_light_share must be between 0 and 1, temporal_sigma positive")
        if self.flow_scale < 1 or self.flow_check < 0 or self.settle_iterations < 0:
            raise UsageError("flow_scale must be at least 1; flow_check and settle_iterations not negative")
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

    def digest(self, result: str, style_hashes: Sequence[str]) -> str:
        """A short stable hash of the fields that change `result` (one of RESULTS, or STILL), the
        style images taken by content: style_hashes, one per self.styles (style_file_hashes)."""
        covered = RESULTS[:2] + (STILL,) if result == STILL else RESULTS[:RESULTS.index(result) + 1]
        data = {f.name: getattr(self, f.name) for f in fields(self) if changes(f) in covered}
        data["styles"] = list(style_hashes)
        blob = json.dumps([result, data], sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def style_file_hashes(settings: Settings) -> list[str]:
    """Content hashes of settings.styles; InputError names a style that cannot be read."""
    hashes = []
    for style in settings.styles:
        try:
            hashes.append(file_sha256(style))
        except OSError as e:
            raise InputError(style, f"style image not readable ({e.strerror or e})") from None
    return hashes


@dataclass(frozen=True)
class RunOptions:
    """How a job runs and reports; never changes a result, so never hashed."""

    output: str | None = option(None, "Output file or folder (one input into a folder: "
                                      "FOLDER/INPUT_STYLE.png/.mp4); without it, beside the input.", INPUT_OUTPUT,
                                "--output", "-o", value_name="PATH")  # text: a trailing / says folder
    overwrite: bool = option(False, "Replace an existing output file (folders: outputs this job did "
                                    "not make).", INPUT_OUTPUT, sets=True)
    keep_frames: bool = option(False, "Video: keep the resume work folder after success.", VIDEO, sets=True)
    quiet: bool = option(False, "Print errors only.", JOB_CONTROL, "--quiet", "-q", sets=True)
    log_format: str = option("auto", "auto: a bar on a terminal, lines otherwise; json: an object per line.",
                             JOB_CONTROL, choices=("auto", "plain", "json"))
    image_format: str = option("png", "Folder: output image format.", INPUT_OUTPUT,
                               choices=tuple(IMAGE_FORMATS), parse=image_format)
    report: str | None = option(None, "Write a report of the job here: .json (one record per file) or .html "
                                      "(a page with thumbnails, failures first, kept up to date as the job goes).",
                                INPUT_OUTPUT, kind=Path)
    max_runtime: float | None = option(None, "Folder: stop cleanly after this long (e.g. 90m, 6h).", JOB_CONTROL,
                                       kind=str, parse=parse_duration, value_name="DURATION")
    dry_run: bool = option(False, "Say what would be done, do nothing.", JOB_CONTROL, sets=True)
    start: str | None = option(None, "Video: start here (1:30, 90s, or 120f frames in).", VIDEO, value_name="TIME")
    duration: str | None = option(None, "Video: stylise this long (20s, 48f).", VIDEO, value_name="DURATION")
    end: str | None = option(None, "Video: stop here (instead of --duration).", VIDEO, value_name="TIME")
    preview: int = option(0, f"Video/folder: stylise N frames or images ({PREVIEW_COUNT} when N is left "
                             "out) onto one sheet, then stop.", JOB_CONTROL, value_name="N")
    # One sheet row per strength (--strength 0.3,0.6,0.9 with --preview).
    preview_strengths: tuple[float, ...] = setting((), parse=float)
    engine: str = option("local", "ray: run a folder or video on a Ray cluster "
                                  "(pip install '.[ray]' in the nstvid folder).", CLUSTER, choices=("local", "ray"))
    ray_address: str = option("auto", "auto (the cluster `ray start` set up) | local (a private one) | "
                                      "HOST:PORT.", CLUSTER, value_name="ADDRESS")
    ray_workers: int = option(0, "Ray workers (0: one per GPU; CPU-only cluster: one per 4 CPUs).", CLUSTER)
    command: tuple[str, ...] = ()  # the command line the job came from (the CLI's argv), for its report

    def validate(self) -> "RunOptions":
        check_choices(self)  # log_format, image_format, engine
        if self.max_runtime is not None and self.max_runtime < 0:
            raise UsageError(f"--max-runtime {self.max_runtime:g}: must not be negative")
        if self.duration is not None and self.end is not None:
            raise UsageError("--duration and --end both given: give one of them")
        for option, text in (("--start", self.start), ("--duration", self.duration), ("--end", self.end)):
            parse_point(text, option)
        if self.ray_workers < 0:
            raise UsageError(f"--ray-workers {self.ray_workers}: must be 0 (one per GPU) or positive")
        if self.report is not None and Path(self.report).suffix.lower() not in (".json", ".html"):
            raise UsageError(f"--report {self.report}: the extension picks the format: .json or .html")
        if self.preview < 0:
            raise UsageError(f"--preview {self.preview}: must be a positive number of pictures")
        for strength in self.preview_strengths:
            if not 0.0 <= strength <= 1.0:
                raise UsageError(f"--strength {strength:g}: must be between 0 and 1")
        return self


SETTINGS_FIELDS = {f.name for f in fields(Settings)}
RUN_FIELDS = {f.name for f in fields(RunOptions)}


def command_line() -> list[tuple[str, Flag, Any]]:
    """(field name, Flag, default) of every option with a flag, panel by panel in PANELS order,
    fields in their declaration order within a panel."""
    found = [(f.name, f.metadata["flag"], f.default) for cls in (Settings, RunOptions)
             for f in fields(cls) if "flag" in f.metadata]
    return sorted(found, key=lambda item: PANELS.index(item[1].panel))


def _coerce(cls: type, name: str, value: Any, source: str) -> Any:
    """A config / flag / keyword value as cls's field takes it: by the field's parse, else by its
    default's type (a tuple's items by parse, else str); UsageError names the source."""
    field = next(f for f in fields(cls) if f.name == name)
    parse = field.metadata.get("parse")
    default = getattr(cls(), name)
    if parse is not None and not isinstance(default, tuple):
        return parse(value)
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
            item = parse or str
            return tuple(item(v) for v in items if str(v).strip() != "")
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
