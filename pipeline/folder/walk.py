"""The walk: every candidate file under the input folder, by content, and the output each one gets.

Recursive, sorted, hidden files and nstvid output folders left out, symlink loops survived (each real
folder is visited once, keyed by device and inode). What a file is comes from media.sniff, the rule
that classifies a single input file too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..media.images import IMAGE_EXTENSIONS
from ..media.sniff import claimed_kind, classify
from ..progress import Callback, Message, ignore
from .manifest import MANIFEST_NAME


@dataclass
class Item:
    """One file found by the walk."""

    rel: str  # POSIX-style path relative to the input folder
    path: Path
    kind: str  # image | video | bad | other (neither: left out, counted and named in the report)
    error: str = ""
    size: int = 0
    mtime_ns: int = 0
    out_rel: str = ""


def image_suffix(image_format: str) -> str:
    ext = "." + image_format.strip().lower().lstrip(".")
    if ext not in IMAGE_EXTENSIONS:
        raise UsageError(f"--image-format {image_format!r}: expected png, jpg, webp, tiff or bmp")
    return IMAGE_EXTENSIONS[ext]


def _dir_key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def walk(input_dir: Path, output_dir: Path, progress: Callback = ignore) -> list[Item]:
    """Every file under input_dir but hidden ones, sorted by relative path: bad files included as
    'bad', files that are neither image nor video (a GIF, a text file) as 'other'."""
    out_key = _dir_key(output_dir)
    visited: set[tuple[int, int]] = set()
    items: list[Item] = []

    def visit(folder: Path, rel: str) -> None:
        key = _dir_key(folder)
        if key is None or key in visited:
            return  # a symlink loop, or a folder reached twice through links: once is enough
        visited.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            items.append(Item(rel or ".", folder, "bad", f"cannot list folder ({e.strerror or e})"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            child = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symlinks; a dangling link is not a folder
            except OSError:
                is_dir = False
            if is_dir:
                if out_key is not None and _dir_key(child) == out_key:
                    continue
                if (child / MANIFEST_NAME).exists():
                    progress(Message(f"skipping {child}: an nstvid output folder"))
                    continue
                visit(child, child_rel)
                continue
            try:
                st = os.stat(child)
            except OSError as e:
                if claimed_kind(child):
                    reason = ("broken symbolic link" if entry.is_symlink() and isinstance(e, FileNotFoundError)
                              else e.strerror or str(e))
                    items.append(Item(child_rel, child, "bad", f"cannot read ({reason})"))
                continue
            kind, reason = classify(child, st)
            items.append(Item(child_rel, child, "other" if kind == "unknown" else kind, reason, st.st_size,
                              st.st_mtime_ns))

    visit(input_dir, "")
    return items


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
