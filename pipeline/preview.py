"""--preview: a few frames of a video (or the first images of a folder) stylised with the job's own
settings, one row per strength asked for, on one contact sheet; then stop. Try, look, launch.

Each picture is a full optimisation, as a video's first frame or a folder's image gets, so the
sheet shows the look the job will have; a video's later frames carry that look on.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .estimate import duration_text, full_seconds, trial
from .frames import at_working_size, to_float, video_size
from .image_job import stylise_unit
from .losses import style_weight_at
from .media.images import Picture, read_image, write_image
from .media.video import FrameSpan
from .media.walk import walk
from .outputs import MANIFEST_NAME
from .prepare import Prepared, prepare
from .progress import Callback, Message, ignore
from .settings import Settings
from .sheet import contact_sheet
from .video.clip import Clip


@dataclass
class PreviewOutcome:
    output: Path  # the sheet
    labels: list[str]  # one per column: "frame 120" or a file's path in the folder
    strengths: list[float]  # one per row of outputs
    seconds: float


def sheet_path(output: Path) -> Path:
    """Beside the job's output: clip_starry.mp4 -> clip_starry_preview.png, out/ -> out_preview.png."""
    return output.with_name(f"{output.stem if output.suffix else output.name}_preview.png")


def _video_pictures(clip: Clip, count: int, long_side: int) -> tuple[list[Picture], list[str]]:
    """count frames spread over the clip, first and last included, decoded exactly at the working
    size; labelled with their numbers in the file (1-based)."""
    h, w = video_size(clip.info.width, clip.info.height, long_side)
    first = clip.span.first if clip.span is not None else 0
    n = clip.frame_count
    picks = sorted({round(k * (n - 1) / max(count - 1, 1)) for k in range(min(count, n))})
    pictures, labels = [], []
    for index in picks:
        one = dataclasses.replace(clip, span=FrameSpan(first + index, first + index + 1, clip.info.fps))
        reader = one.frames((w, h))
        try:
            frame = next(iter(reader))
        except StopIteration:
            continue  # the container promised more frames than it holds
        finally:
            reader.close()
        pictures.append(Picture(to_float(frame)))
        labels.append(f"frame {first + index + 1}")
    return pictures, labels


def _folder_pictures(folder: Path, output: Path, count: int, long_side: int) -> tuple[list[Picture], list[str]]:
    pictures: list[Picture] = []
    labels: list[str] = []
    for item in walk(folder, output, skip_folders_holding=(MANIFEST_NAME,)):
        if item.kind == "image" and len(pictures) < count:
            pictures.append(at_working_size(read_image(item.path), long_side))
            labels.append(item.rel)
    if not pictures:
        raise UsageError(f"{folder}: no images to preview")
    return pictures, labels


def run_preview(source: Path, kind: str, clip: Clip | None, output: Path, settings: Settings, count: int,
                strengths: tuple[float, ...], progress: Callback = ignore) -> PreviewOutcome:
    """Stylise the picked pictures once per strength and write the sheet to `output`."""
    started = time.perf_counter()
    if kind == "video":
        pictures, labels = _video_pictures(clip, count, settings.size)
    elif kind == "folder":
        pictures, labels = _folder_pictures(source, output.parent, count, settings.size)
    else:
        pictures, labels = [at_working_size(read_image(source), settings.size)], [source.name]
    strengths = strengths or (settings.strength,)
    prepared = prepare(settings, progress)
    size = pictures[0].size
    cost = full_seconds(settings, size, trial(prepared, size)) * len(pictures) * len(strengths)
    progress(Message(f"preview: {len(pictures)} {'frames' if kind == 'video' else 'images'} x "
                     f"{len(strengths)} strength{'s' * (len(strengths) > 1)} at {size[1]}x{size[0]}: about "
                     f"{duration_text(cost)} on {prepared.engine.device}, as long as {len(pictures) * len(strengths)} "
                     "images at that size", code="preview.plan",
                     fields={"pictures": len(pictures), "strengths": len(strengths), "width": size[1],
                             "height": size[0], "cost_seconds": round(cost, 1)}))
    rows = [("input", [p.rgb for p in pictures])]
    for strength in strengths:
        at = dataclasses.replace(prepared, settings=dataclasses.replace(settings, strength=strength))
        styled = _stylise_all(at, pictures, progress)
        pull = style_weight_at(settings.style_weight, strength, settings.size)
        rows.append((f"strength {strength:g} (style weight {pull:.3g} at this size)", [p.rgb for p in styled]))
    write_image(output, Picture(contact_sheet(rows, labels, footer(settings, strengths))))
    return PreviewOutcome(output, labels, list(strengths), time.perf_counter() - started)


def _stylise_all(prepared: Prepared, pictures: list[Picture], progress: Callback) -> list[Picture]:
    """Pictures of one working size together (image_job.stylise_unit), in the order given; a pass
    that fails fails the sheet."""
    out: list[Picture] = list(pictures)
    for done in stylise_unit(prepared, pictures, {}, len(pictures), progress):
        if isinstance(done.styled, BaseException):
            raise done.styled
        for k, picture in zip(done.members, done.styled):
            out[k] = picture
    return out


def footer(settings: Settings, strengths: tuple[float, ...]) -> list[str]:
    styles = ", ".join(Path(s).name for s in settings.styles)
    output = "source size" if settings.output_size is None else f"{settings.output_size} px"
    return [f"style {styles}; painted at {settings.size} px (shown here), output at {output} ({settings.detail} "
            f"detail); scales {settings.scales}, iterations {settings.iterations}, "
            f"frame iterations {settings.frame_iterations}",
            f"strength {', '.join(f'{s:g}' for s in strengths)} "
            f"(style weight {settings.style_weight:g} at 0.5 and 512 px), "
            f"content weight {settings.content_weight:g}, tv weight {settings.tv_weight:g}, "
            f"style scale {settings.style_scale:g}{', colours kept' if settings.preserve_colors else ''}"]
