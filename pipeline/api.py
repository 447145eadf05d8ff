"""The Python API, and what the CLI calls: one entry point for images, videos and folders.

    import nstvid

    outcome = nstvid.stylise("clip.mp4", style="starry.jpg", size=256, progress=print)

`load_job` builds and checks everything that can be checked before work starts (settings, styles,
input kind, output path and format, devices, weights); `run` does the work. `stylise` is both.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .cluster.connect import check_address, check_installed
from .deliver import output_size, video_output_size
from .errors import InputError, NstvidError, UsageError
from .lock import output_lock
from .media.images import check_working_size, header_size, read_image, working_size
from .media.sniff import classify
from .media.video import GIF_LONG_SIDE, GIF_SOURCE, container_codec, encoder_problem
from .outputs import check_output, default_output
from .progress import NEVER_STOP, Callback, Message, StopRequest, ignore
from .settings import RunOptions, Settings, load, read_config
from .video.clip import Clip, open_clip

# Everything that imports torch (about 2.5 s) is imported where it is used: a job that load_job
# refuses (a typo in a path, an output that exists, a bad range) is refused in under a second,
# which is what a cron job or a script that checks many jobs waits for.
if TYPE_CHECKING:
    from .backend import Backend
    from .folder.run import FolderSummary
    from .image_job import ImageOutcome
    from .preview import PreviewOutcome
    from .report import JobSummary
    from .video.orchestrator import VideoOutcome


@dataclass(frozen=True)
class DryRun:
    """What a dry run on one file would write; nothing was."""

    output: Path
    seconds: float = 0.0


Outcome = Union["ImageOutcome", "VideoOutcome", "FolderSummary", "PreviewOutcome", DryRun]


@dataclass(frozen=True)
class Job:
    """One checked job: what to stylise, into what, how."""

    input: Path
    kind: str  # image | video | folder
    output: Path
    settings: Settings
    options: RunOptions
    clip: Clip | None = None  # a video's frames to stylise (all, or --start/--duration/--end)


def input_kind(path: Path) -> str:
    """'image', 'video' or 'folder', by content (media.sniff, the folder walk's rule too). A file
    whose content and name say neither goes to ffmpeg as a video: it knows more formats."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    kind, reason = classify(path)
    if kind == "bad":
        raise InputError(path, reason)
    return "image" if kind == "image" else "video"


def _styles(style: str | Path | Iterable[str | Path] | None) -> tuple[str, ...] | None:
    if style is None:
        return None
    if isinstance(style, (str, Path)):
        return (str(style),)
    return tuple(str(s) for s in style)


def _strengths(strength: Any, preview: Any) -> dict[str, Any]:
    """--strength S, or with --preview a list S1,S2,... (one sheet row each)."""
    if strength is None or isinstance(strength, (int, float)):
        return {}
    given = strength.split(",") if isinstance(strength, str) else list(strength)
    try:
        values = [float(v) for v in given if str(v).strip() != ""]
    except ValueError:
        raise UsageError(f"--strength {strength!r}: expected a number from 0 to 1, or several for "
                         "--preview (0.3,0.6,0.9)") from None
    if len(values) > 1 and not preview:
        raise UsageError(f"--strength {strength}: several strengths are for --preview, one sheet row each")
    return {"strength": values[0] if values else None, "preview_strengths": tuple(values) if len(values) > 1 else None}


def _check_model(settings: Settings) -> None:
    """Devices, precision and weights (the checks that need torch, so the last of load_job's)."""
    from .engine import pick_device, pick_dtype
    from .features import resolve_weights

    device = pick_device(settings.device)
    for spec in settings.devices:
        pick_device(spec)
    pick_dtype(settings.precision, pick_device(settings.devices[0]) if settings.devices else device)
    resolve_weights(settings.weights)


def _check_cluster_job(settings: Settings, options: RunOptions) -> None:
    """What --engine ray cannot do, refused before work: Ray installed, an address of the right
    form (whether a cluster answers there is checked when the job joins it, before its first
    unit); workers get the style pictures and frames from this process, but no other file of
    this machine."""
    check_installed()
    check_address(options.ray_address)
    if settings.devices:
        raise UsageError("--devices and --engine ray both given: the cluster's workers are the devices")
    if settings.init not in ("content", "noise"):
        raise UsageError(f"--init {settings.init}: an init image is not sent to Ray workers; "
                         "use content or noise")
    if settings.weights not in ("embedded", "torchvision"):
        raise UsageError(f"--weights {settings.weights}: a weights file is not sent to Ray workers; "
                         "use embedded or torchvision")


def asked_log_format(given: str | None, config: Path | str | None) -> str:
    """The log format a job asks for, known before the job loads (the CLI reports a refusal in
    it): the flag's, else the config file's, else auto. A config file that cannot be read says
    nothing here; its refusal is then the error being reported."""
    if given:
        return given
    if config is not None:
        try:
            return str(read_config(config).get("log_format", "auto"))
        except (NstvidError, OSError):
            pass
    return "auto"


def load_job(input: str | Path, style: str | Path | Iterable[str | Path] | None = None,
             output: str | Path | None = None, *, preset: str | None = None,
             config: str | Path | None = None, **options: Any) -> Job:
    """Build the job's settings (defaults < preset < config file < options) and check it.

    options: any config-file key (size=256, style_weight=20, frame_iterations=30, overwrite=True,
    report="r.json", ...). Raises UsageError, InputError or OutputError (one line, naming the file
    or option) for anything that would make the job fail later.
    """
    options = {**options, **_strengths(options.get("strength"), options.get("preview"))}
    settings, run_options = load({**options, "styles": _styles(style), "output": output},
                                 preset=preset, config=config)
    if not settings.styles:
        raise UsageError("no style given: pass --style FILE")
    for path in settings.styles:
        read_image(path)  # decodes: a missing or broken style fails here, named
    if settings.init not in ("content", "noise"):
        read_image(settings.init)
    if run_options.engine == "ray":
        _check_cluster_job(settings, run_options)
    source = Path(input)
    kind = input_kind(source)
    clip = open_clip(source, run_options) if kind == "video" else None
    settings = _for_output(settings, kind, source, run_options, clip,
                           given={k for k, v in options.items() if v is not None})
    if kind != "image" and not run_options.preview:  # a folder may hold videos
        problem = encoder_problem(settings.codec, settings.crf)
        if problem:
            raise UsageError(problem)
    ranged = any(v is not None for v in (run_options.start, run_options.duration, run_options.end))
    if ranged and kind != "video":
        raise UsageError(f"{source}: --start, --duration and --end choose part of a single video")
    size = (clip.info.height, clip.info.width) if clip else header_size(source) if kind == "image" else None
    if size:  # a sliver no working size can give VGG19's smallest side, refused before work
        check_working_size(source, size, settings.size)
    target = _checked_output(source, kind, settings, run_options)
    _check_model(settings)
    return Job(source, kind, target, settings, run_options, clip)


def _sizes(job: Job) -> str:
    """' at WxH, painted at wxh' for a single image or video (a folder's files are not opened)."""
    from .frames import video_size  # torch: not for a job refused before its work
    from .polish import polish_tiles

    s = job.settings
    if job.clip is not None:
        info = job.clip.info
        (h, w), (wh, ww) = (video_output_size(info.width, info.height, s.output_size),
                            video_size(info.width, info.height, s.size))
    elif job.kind == "image":
        source = header_size(job.input)
        (h, w), (wh, ww) = output_size(source, s.output_size), working_size(source, s.size)
    else:
        return ""
    tiles = [] if job.clip is not None else polish_tiles(s, (wh, ww), (h, w))  # video frames take guided
    n = len(tiles)
    polished = f", polished in {n} tile{'s' * (n != 1)} of {tiles[0][3]}x{tiles[0][2]}" if tiles else ""
    return f" at {w}x{h}, painted at {ww}x{wh}{polished}"


def _for_output(settings: Settings, kind: str, source: Path, options: RunOptions, clip: Clip | None,
                given: set[str]) -> Settings:
    """The settings for the job's output: --codec auto resolved to the container's encoder (a
    folder's videos are .mp4), and a GIF's long side bounded to GIF_LONG_SIDE, output and working
    size alike, unless --output-size (or --size) says (given: the options the caller named)."""
    if kind == "image":
        return settings
    target = Path("video.mp4") if kind == "folder" else single_output(source, kind, settings, options)
    changed: dict[str, Any] = {"codec": container_codec(target)} if settings.codec == "auto" else {}
    if target.suffix.lower() == ".gif":
        # A cap, not a size: a clip smaller than GIF_LONG_SIDE stays at its own (only a video makes a GIF).
        if "output_size" not in given and clip is not None and max(clip.info.width, clip.info.height) > GIF_LONG_SIDE:
            changed["output_size"] = GIF_LONG_SIDE
        if "size" not in given and settings.size > GIF_LONG_SIDE:
            changed["size"] = GIF_LONG_SIDE
    return dataclasses.replace(settings, **changed)


def _checked_output(source: Path, kind: str, settings: Settings, options: RunOptions) -> Path:
    """Where the job writes, refused now if it cannot: the output file, the output folder, or for
    --preview the sheet (beside the output the job would write; a folder's beside the input folder
    without -o). Previews replace each other."""
    if options.preview:
        from .preview import sheet_path

        base = Path(options.output) if kind == "folder" and options.output else (
            single_output(source, kind, settings, options))
        target = sheet_path(base)
        check_output(source, target, kind="image", overwrite=True, probe_folder=not options.dry_run)
    elif kind == "folder":
        from .folder.run import check_folders

        if options.output is None:
            raise UsageError(f"{source}: a folder input needs -o OUTPUT_FOLDER")
        target = Path(options.output)
        check_folders(source, target, options)
    else:
        target = single_output(source, kind, settings, options)
        check_output(source, target, kind=kind, overwrite=options.overwrite, codec=settings.codec,
                     probe_folder=not options.dry_run)
    return target


def single_output(source: Path, kind: str, settings: Settings, options: RunOptions) -> Path:
    """The output file of one input: -o FILE; -o DIR (an existing folder, or a name ending in /)
    writes DIR/NAME_STYLE.EXT in it, as Real-ESRGAN, demucs and whisper do; without -o, beside the
    input (a folder input's preview: beside the folder)."""
    if kind == "folder":
        return source
    named = default_output(source, settings.styles, kind)
    if not options.output:
        return named
    output = Path(options.output)
    if output.is_dir() or str(options.output).endswith(("/", os.sep)):
        return output / named.name
    return output


def run(job: Job, progress: Callback = ignore, stop: StopRequest = NEVER_STOP) -> Outcome:
    """Do a checked job. progress gets the job's events (progress.py); stop, once set (e.g. from a
    signal handler), makes a video or folder job finish the frame or file in hand and raise
    Interrupted (a folder returns its summary with exit code 128 + signal)."""
    from .folder.run import run_folder
    from .prepare import prepare
    from .preview import run_preview
    from .report import FileReport, job_info
    from .video.stream import estimate_video

    preview = job.options.preview
    if job.options.dry_run and not (job.kind == "folder" and not preview):  # a folder's is the plan
        if job.kind == "video" and not preview:  # the plan and how long it will take
            progress(estimate_video(prepare(job.settings, progress), job.clip))
        sizes = "" if preview else _sizes(job)
        progress(Message(f"would {'preview' if preview else 'stylise'} {job.input} -> {job.output}{sizes}",
                         code="dry_run.would_stylise", fields={"path": str(job.input), "output": str(job.output)}))
        return DryRun(job.output)
    if preview:
        return run_preview(job.input, job.kind, job.clip, job.output, job.settings, preview,
                           job.options.preview_strengths, progress)
    if job.kind == "folder":  # the folder's own lock covers its videos' outputs too
        backend = _backend(job, progress)
        try:
            return run_folder(job.input, job.output, job.settings, job.options, backend, progress, stop)
        finally:
            backend.close()
    # One run per output: a second one would take the first one's resume frames for its own, or
    # start fresh and delete them, and both would write the output (exit 3 instead).
    lock = output_lock(job.output)
    lock.acquire(progress)
    try:
        if job.options.report is None:
            return _run_file(job, progress, stop)
        info = job_info(job.input, job.output, job.kind, job.settings, job.options)
        with FileReport(job.options.report, info, job.clip.span if job.clip else None) as report:
            outcome = _run_file(job, progress, stop)
            report.done(outcome)
        return dataclasses.replace(outcome, summary=report.summary)  # what write_report takes
    finally:
        lock.release()


def _backend(job: Job, progress: Callback) -> Backend:
    """Where the job runs, chosen here and nowhere else: the Ray workers (the cluster is joined
    now, so a bad address fails before any work) or this machine (backend.py)."""
    if job.options.engine == "ray":
        from .cluster.backend import RayBackend

        return RayBackend(job.options, job.settings, progress)
    from .backend import LocalBackend

    return LocalBackend(job.settings)


def _run_file(job: Job, progress: Callback, stop: StopRequest) -> ImageOutcome | VideoOutcome:
    """A single image or video, its output locked, on the job's backend (left at the end); a GIF
    output through a lossless video (_run_gif)."""
    if job.kind == "video" and job.output.suffix.lower() == ".gif":
        return _run_gif(job, progress, stop)
    from .prepare import prepare
    from .video.orchestrator import stylise_clip

    backend = _backend(job, progress)
    try:
        def prepared():
            return prepare(job.settings, progress)

        if job.kind == "image":
            return backend.stylise_image(prepared, job.input, job.output, progress)
        return stylise_clip(backend.video_executor(prepared, stop), job.settings, job.clip, job.output,
                            keep_frames=job.options.keep_frames, progress=progress, stop=stop,
                            comment=job.clip.record())
    finally:
        backend.close()


def _run_gif(job: Job, progress: Callback, stop: StopRequest) -> ImageOutcome | VideoOutcome:
    """A video into an animated GIF: the clip stylised into a lossless video beside it (GIF_SOURCE,
    hidden; it and its resume folder are kept until the GIF is made), then one palette for the
    whole clip, the input GIF's loop kept (a video's loops for ever)."""
    from .media.video import gif_loop, write_gif

    source = job.output.with_name(f".{job.output.name}{GIF_SOURCE[0]}")
    outcome = _run_file(dataclasses.replace(job, output=source), progress, stop)
    progress(Message(f"making {job.output.name}: one palette for the clip", code="gif.palette"))
    write_gif(source, job.output, gif_loop(job.input))
    source.unlink(missing_ok=True)
    return dataclasses.replace(outcome, output=job.output)


def stylise(input: str | Path, style: str | Path | Iterable[str | Path] | None = None,
            output: str | Path | None = None, *, preset: str | None = None, config: str | Path | None = None,
            progress: Callback | None = None, stop: StopRequest | None = None, **options: Any) -> Outcome:
    """Stylise an image, a video or a folder; see load_job for the options and run for the rest.

    Returns an ImageOutcome, VideoOutcome or FolderSummary (folders: per-file failures are in its
    records and exit_code, not raised), or a DryRun with dry_run=True. With report=PATH (.json or
    .html) the report is written as the job goes; a FolderSummary is the report's summary, and a
    single file's outcome carries one in .summary: nstvid.write_report(summary, path) writes it again.
    """
    return run(load_job(input, style, output, preset=preset, config=config, **options),
               progress or ignore, stop or NEVER_STOP)


def write_report(summary: JobSummary, path: str | Path) -> None:
    """Write a job's report to path, .html (the page) or .json (its records) by the extension:
    summary is what run or stylise returned for a folder, or a single file's outcome.summary (a job
    run with report=... has its report written already; this writes another, anywhere).
    Raises UsageError for another extension, OutputError when the file cannot be written."""
    from .report import JobSummary
    from .report import write_report as write_page

    summary = getattr(summary, "summary", None) or summary  # an outcome stands for its summary
    if not isinstance(summary, JobSummary):
        raise UsageError("write_report: expected a job's summary (a FolderSummary, or outcome.summary of a job "
                         "run with report=...)")
    write_page(summary, path)


def temporal_error(input_video: str | Path, output_video: str | Path, **part: str | None) -> dict:
    """E_warp of output_video measured with input_video's flow (see flow.warping_error):
    {"e_warp": mean, "pairs": [per frame pair], "input_e_warp": the input's own}. part: start,
    duration, end as nstvid takes them, when output_video is made of a part of input_video."""
    return flicker(input_video, [output_video], **part)[0]


def flicker(input_video: str | Path, outputs: list[str | Path], plot: str | Path | None = None, *,
            start: str | None = None, duration: str | None = None, end: str | None = None) -> list[dict]:
    """temporal_error for each output, with the input's own E_warp per pair ("input_pairs") and the
    pairs that cross the input's scene cuts ("cuts", 1-based); with plot, also a PNG of them all.

    Each output is compared with its own span of the input: start/duration/end (nstvid's forms:
    1s, 8f, 1:30) for every output, else the part nstvid recorded in the output's comment tag
    (Clip.record), else the whole input. UsageError (one line) when the frame counts differ."""
    from .plot import flicker_plot, require_matplotlib

    given = RunOptions(start=start, duration=duration, end=end).validate()
    ranged = any(v is not None for v in (start, duration, end))
    if plot is not None:
        require_matplotlib()  # before the minutes of measuring, not after
    spans: dict = {}  # the input's frames, own E_warp and cuts per span, measured once each
    reports = [_flicker_of(Path(input_video), Path(output), given if ranged else None, spans) for output in outputs]
    if plot is not None:  # the input's own E_warp and cuts: those of the first output's span
        first = reports[0]
        flicker_plot(Path(plot), first["input_pairs"], {Path(r["output"]).name: r["pairs"] for r in reports},
                     first["cuts"])
    return reports


def _flicker_of(input_video: Path, output: Path, given: RunOptions | None, spans: dict) -> dict:
    """One output's report for flicker: its span of the input (given, or recorded in it)."""
    from .flow import warping_error
    from .media.video import probe, read_comment, read_frames
    from .video.clip import open_clip, recorded_part, scan

    part = given or recorded_part(read_comment(output))
    clip = open_clip(input_video, part)
    key = clip.key()
    if str(key) not in spans:
        frames, scores, _ = scan(clip)
        floor = warping_error(clip.frames((clip.info.width, clip.info.height)),
                              clip.frames((clip.info.width, clip.info.height)))
        cuts = [k + 1 for k, score in enumerate(scores) if score > Settings().scene_cut_threshold]
        spans[str(key)] = (frames, floor, cuts)
    frames, floor, cuts = spans[str(key)]
    made = probe(output).frame_count
    if made != frames:  # the container's count, exact for nstvid's outputs: another's may be VFR
        made = scan(open_clip(output))[0]
    if made != frames:
        what = f"frames {key[0] + 1}-{key[1]} of {input_video}" if key else f"the {frames} of {input_video}"
        raise UsageError(f"{output}: {made} frames against {what}: pass the part it was made from as nstvid "
                         "took it (--start 1s --duration 8f, or --end)")
    pairs = warping_error(read_frames(output), clip.frames((clip.info.width, clip.info.height)))
    return {"output": str(output), "e_warp": sum(pairs) / len(pairs) if pairs else 0.0, "pairs": pairs,
            "input_e_warp": sum(floor) / len(floor) if floor else 0.0, "input_pairs": floor, "cuts": cuts,
            "input_frames": key or [0, frames]}

