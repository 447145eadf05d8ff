"""The outputs a folder job's files get: the suffix of --image-format, and the mirrored names."""
from __future__ import annotations

from pathlib import Path

from ..media.images import IMAGE_EXTENSIONS
from ..media.walk import Item


def image_suffix(image_format: str) -> str:
    """The suffix of the images a folder job writes: '.png' for png (RunOptions.image_format, one
    of settings.IMAGE_FORMATS: the option's parser and validate() saw to it)."""
    return IMAGE_EXTENSIONS["." + image_format]


def assign_outputs(items: list[Item], image_suffix: str) -> None:
    """photo.jpg -> photo.png, clip.mov -> clip.mp4.  When two inputs would share an output (a.jpg
    and a.png), the one whose name already has the output suffix keeps it and the others keep their
    full name plus the suffix (a.jpg.png)."""
    wanted: dict[str, list[Item]] = {}
    for item in items:
        if item.kind not in ("image", "video"):
            continue
        suffix = ".mp4" if item.kind == "video" else image_suffix
        stem = item.rel[: len(item.rel) - len(Path(item.rel).suffix)] if Path(item.rel).suffix else item.rel
        item.out_rel = stem + suffix
        wanted.setdefault(item.out_rel.lower(), []).append(item)
    for group in wanted.values():
        if len(group) < 2:
            continue
        owner = next((i for i in group if i.rel == i.out_rel), None)
        for item in group:
            if item is not owner:
                item.out_rel = item.rel + (".mp4" if item.kind == "video" else image_suffix)
