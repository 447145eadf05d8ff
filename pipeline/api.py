"""The API the CLI calls: one function per job kind, each taking a frozen Settings and a callback."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from .engine import Engine
from .errors import InputError
from .image_job import check_output, default_output, stylise_file
from .media.images import IMAGE_EXTENSIONS, looks_like_image, read_image
from .progress import NEVER_STOP, Callback, Message, StopRequest, ignore
from .settings import Settings
from .style_targets import StyleSet


@dataclass
class Outcome:
    output: Path
    seconds: float


def input_kind(path: Path) -> str:
    """'image', 'video' or 'folder', by content rather than by name."""
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        return "folder"
    if looks_like_image(path):
        return "image"
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        # Named like an image but not one: decoding says why (empty, corrupt, text, ...).
        read_image(path)
        raise InputError(path, "not an image (its content is not PNG, JPEG, WebP, TIFF or BMP)")
    return "video"


def default_output_for(input_path: Path, settings: Settings, kind: str) -> Path:
    """INPUT_STYLE.png for images, INPUT_STYLE.mp4 for videos, beside the input."""
    return default_output(input_path, settings.styles, ".mp4" if kind == "video" else ".png")


def prepare(settings: Settings, progress: Callback = ignore) -> tuple[Engine, StyleSet]:
    """Build the engine and read the style images once per job. Work done in this process (images;
    videos without --devices) runs on one device: with --devices, the first of them."""
    if settings.devices:
        progress(Message(f"--devices: images run on one device, {settings.devices[0]}"))
        settings = replace(settings, device=settings.devices[0], devices=())
    engine = Engine.create(settings)
    styles = StyleSet(engine)
    progress(Message(f"device {engine.device}, precision {engine.precision_name}, "
                     f"weights {engine.weights.kind}"))
    return engine, styles


def run(input_path: Path, output: Path | None, settings: Settings, *, kind: str | None = None,
        overwrite: bool = False, keep_frames: bool = False, progress: Callback = ignore,
        stop: StopRequest = NEVER_STOP) -> Outcome:
    """Stylise one image or video file (folders: see folder_job)."""
    started = time.perf_counter()
    kind = kind or input_kind(input_path)
    for style in settings.styles:
        if not Path(style).is_file():
            raise InputError(style, "style image not found")
    if kind == "image":
        output = output or default_output_for(input_path, settings, kind)
        check_output(input_path, output, overwrite)
        engine, styles = prepare(settings, progress)
        stylise_file(engine, styles, input_path, output, overwrite=overwrite, progress=progress)
        return Outcome(output, time.perf_counter() - started)
    if kind == "video":
        from .video_job import stylise_video
        output = output or default_output_for(input_path, settings, kind)
        check_output(input_path, output, overwrite)
        if settings.devices:
            from .video_workers import stylise_video_on_devices
            stylise_video_on_devices(settings, input_path, output, overwrite=overwrite,
                                     keep_frames=keep_frames, progress=progress, stop=stop)
            return Outcome(output, time.perf_counter() - started)
        engine, styles = prepare(settings, progress)
        stylise_video(engine, styles, input_path, output, overwrite=overwrite, keep_frames=keep_frames,
                      progress=progress, stop=stop)
        return Outcome(output, time.perf_counter() - started)
    raise InputError(input_path, f"cannot stylise a {kind} here")


def temporal_error(input_video: Path, output_video: Path) -> dict:
    """E_warp of output_video measured with input_video's flow (see flow.warping_error)."""
    from .flow import warping_error
    from .media.video import read_frames

    pairs = warping_error(read_frames(output_video), read_frames(input_video))
    floor = warping_error(read_frames(input_video), read_frames(input_video))
    mean = sum(pairs) / len(pairs) if pairs else 0.0
    return {"e_warp": mean, "pairs": pairs, "input_e_warp": sum(floor) / len(floor) if floor else 0.0}
