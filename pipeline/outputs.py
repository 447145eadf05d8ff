"""Output paths: the default name beside the input, and every check that can refuse an output
before any work is done (format, overwriting, the input itself, a folder nothing can be made in)."""
from __future__ import annotations

from pathlib import Path

from .errors import OutputError
from .media.images import check_writable_folder, output_format
from .media.video import container_problem

# A folder job's manifest (folder/manifest.py), in its output folder: it also marks the folder as
# an nstvid output folder, which a walk of an input folder leaves out.
MANIFEST_NAME = ".nstvid-manifest.json"


def default_output(input_path: Path, styles: tuple[str, ...], kind: str) -> Path:
    """photo.jpg + starry.jpg -> photo_starry.png beside the input (clip.mov -> clip_starry.mp4;
    several styles joined with '+')."""
    tag = "+".join(Path(s).stem for s in styles)
    return input_path.with_name(f"{input_path.stem}_{tag}{'.mp4' if kind == 'video' else '.png'}")


def check_output(input_path: Path, output_path: Path, *, kind: str, overwrite: bool,
                 codec: str = "libx264", probe_folder: bool = True) -> None:
    """Refuse an output that would destroy data or cannot be written: OutputError naming it.
    probe_folder: make the output's folder and try creating a file in it (not for a dry run)."""
    if output_path.resolve() == input_path.resolve():
        raise OutputError(output_path, "output path is the input file; choose another -o")
    if output_path.is_dir():
        raise OutputError(output_path, "output path is a folder")
    if output_path.exists() and not overwrite:
        raise OutputError(output_path, "output exists (pass --overwrite to replace it)")
    if kind == "video":
        problem = container_problem(output_path, codec)
        if problem:
            raise OutputError(output_path, problem)
    else:
        output_format(output_path)
    if probe_folder:
        check_writable_folder(output_path.parent)
