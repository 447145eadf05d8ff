"""Triage: the verdict on each file found by the walk (skip, do or fail), and the units the work
is run in.

A file is skipped when its manifest entry is `done`, the settings hash and the planned output path
are unchanged, the output still exists, and the input is unchanged (same size and mtime, or, when
those moved, the same SHA-256). A file that failed for good (unusable content) and has not changed
fails again without a second try. Everything else is (re)done; videos resume through the video
job's own resume. An output that exists at a final path is only replaced when the manifest says
this job made it, when the output itself says so (origin.py: a manifest lost or damaged), or with
--overwrite; a foreign file in the way is a per-file failure. Without a manifest entry, an output
whose record names this input and these settings is skipped, and recorded again.
--overwrite does not force finished files to be redone: delete the manifest and pass --overwrite
for that.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..files import file_sha256
from ..media.images import Picture, header_size, working_size
from ..media.walk import Item, walk
from ..outputs import MANIFEST_NAME
from ..progress import Callback
from ..report.record import FileRecord
from .naming import assign_outputs
from .origin import origin


@dataclass
class Verdict:
    """What to do with one item: 'skip', 'do', 'fail' (with the reason) or 'leave' (neither image
    nor video: left out); sha256 when the triage had to hash the file."""

    item: Item
    action: str
    reason: str = ""
    sha256: str = ""
    proven: bool = False  # skipped on the output's own record (origin.py), with no manifest entry


def decide(item: Item, entry: dict | None, digest: str, output_dir: Path, overwrite: bool,
           input_files: set[Path]) -> Verdict:
    """The verdict on one item, given its manifest entry and the settings digest of its kind."""
    if item.kind == "bad":
        return Verdict(item, "fail", item.error)
    if item.kind == "other":
        return Verdict(item, "leave")
    out_path = output_dir / item.out_rel
    try:
        if out_path.resolve() in input_files:
            return Verdict(item, "fail", f"output {out_path} would overwrite an input file")
    except OSError:
        pass
    if entry and entry.get("status") == "failed" and entry.get("permanent") \
            and entry.get("settings") == digest and entry.get("size") == item.size \
            and entry.get("mtime_ns") == item.mtime_ns:
        return Verdict(item, "fail", entry.get("error", "failed before"))  # unchanged: no second try
    out_exists = out_path.exists() or out_path.is_symlink()
    if entry and entry.get("status") == "done" and entry.get("settings") == digest \
            and entry.get("output") == item.out_rel and out_exists:
        if entry.get("size") == item.size and entry.get("mtime_ns") == item.mtime_ns:
            return Verdict(item, "skip")
        if entry.get("size") == item.size and entry.get("sha256"):
            try:
                sha = file_sha256(item.path)
            except OSError as e:
                return Verdict(item, "fail", f"cannot read ({e.strerror or e})")
            if sha == entry["sha256"]:
                return Verdict(item, "skip", sha256=sha)  # touched or copied, not changed
    if entry is None and out_exists and not overwrite and out_path.is_file():
        proof = _by_origin(item, out_path, digest)
        if proof is not None:
            return proof
    if out_exists and not overwrite and not (entry and entry.get("output") == item.out_rel):
        if out_path.is_dir():
            return Verdict(item, "fail", f"output {out_path} is a folder")
        return Verdict(item, "fail", f"output {out_path} exists and was not made by this job "
                                  f"(pass --overwrite to replace it)")
    return Verdict(item, "do")


def _by_origin(item: Item, out_path: Path, digest: str) -> Verdict | None:
    """Without a manifest entry: the verdict an output's own record gives (skip when it was made
    from this input with these settings, do when from this input with others), or None."""
    found = origin(out_path, item.kind)
    if found is None:
        return None
    try:
        sha = file_sha256(item.path)
    except OSError as e:
        return Verdict(item, "fail", f"cannot read ({e.strerror or e})")
    if found["input"] != sha:
        return None
    if found["settings"] == digest:
        return Verdict(item, "skip", sha256=sha, proven=True)
    return Verdict(item, "do", sha256=sha)


def triage(input_dir: Path, output_dir: Path, *, overwrite: bool, digests: dict[str, str],
             image_suffix: str, manifest_entries: Mapping[str, dict], progress: Callback) -> list[Verdict]:
    """Walk the input folder and decide every file, in walk order."""
    items = walk(input_dir, output_dir, skip_folders_holding=(MANIFEST_NAME,), progress=progress)
    assign_outputs(items, image_suffix)
    input_files = set()
    for item in items:
        try:
            input_files.add(item.path.resolve())
        except OSError:
            pass
    return [decide(item, manifest_entries.get(item.rel), digests["video" if item.kind == "video" else "image"],
                   output_dir, overwrite, input_files) for item in items]


def set_aside(plans: list[Verdict]) -> tuple[list[Verdict], list[str]]:
    """The plans of the images and videos (and bad files), and the files left out: neither image
    nor video (relative paths, in walk order), which the summary counts and the report names."""
    return [p for p in plans if p.action != "leave"], [p.item.rel for p in plans if p.action == "leave"]


@dataclass
class Task:
    """A file to stylise and its report record, filled in as the work goes."""

    item: Item
    out_path: Path
    digest: str  # settings hash the manifest records
    sha256: str  # known from the triage, or "" (hashed when the file is begun)
    record: FileRecord
    picture: Picture | None = None  # images: read and at working size while their group runs
    seconds: float = 0.0  # wall time spent on this file, its share of a batch included


def units(tasks: list[Task], long_side: int, batch: int) -> list[list[Task]]:
    """Split tasks into units of work: each video alone, images of one working size in groups of up
    to `batch`.  A unit stands where its first file is in walk order.  Sizes come from the file
    headers (no decoding); a file whose header says nothing is a group of its own.  The header is
    only a hint: job.FolderJob.run_images regroups by the size the decoder finds."""
    out: list[list[Task]] = []
    filling: dict[object, list[Task]] = {}  # working size -> the group still taking images
    for task in tasks:
        if task.item.kind == "video" or batch == 1:
            out.append([task])
            continue
        header = header_size(task.item.path)
        key = working_size(header, long_side) if header else id(task)
        group = filling.get(key)
        if group is None or len(group) >= batch:
            group = filling[key] = []
            out.append(group)
        group.append(task)
    return out
