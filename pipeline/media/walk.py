"""The walk: every candidate file under a folder, by content, in a stable order.

Recursive, sorted, hidden files left out, symlink loops survived (each real folder is visited once,
keyed by device and inode); the caller names the folders to leave out (the output folder, and
those holding a marker file). What a file is comes from media.sniff, the rule that classifies a
single input file too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..progress import Callback, Message, ignore
from .sniff import claimed_kind, classify


@dataclass
class Item:
    """One file found by the walk."""

    rel: str  # POSIX-style path relative to the input folder
    path: Path
    kind: str  # image | video | bad | other (neither: left out, counted and named in the report)
    error: str = ""
    size: int = 0
    mtime_ns: int = 0
    out_rel: str = ""  # a folder job's output for it, relative to the output folder (folder/naming.py)


def _dir_key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def walk(input_dir: Path, output_dir: Path, *, skip_folders_holding: tuple[str, ...] = (),
         progress: Callback = ignore) -> list[Item]:
    """Every file under input_dir but hidden ones, sorted by relative path: bad files included as
    'bad', files that are neither image nor video (a GIF, a text file) as 'other'. Left out:
    hidden names, output_dir, and a folder that holds a file named in skip_folders_holding (an
    nstvid output folder holds its manifest, outputs.MANIFEST_NAME)."""
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
                if any((child / name).exists() for name in skip_folders_holding):
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
