"""The resume store of a clip, `.NAME.nstvid-work/` beside the output: the encoded segments done
(segments.json records frames, bytes and sha256 of each), the raw frames a seam or the next
segment's anchor needs, and, for a segment in progress on this machine, every finished frame as a
PNG, so a rerun after Ctrl-C, SIGTERM or kill -9 goes on from the last finished frame.

A frame is kept in one of two forms: a PNG, written by a local worker beside its optimisation
(small on disk: every frame of a segment in progress), or an uncompressed .npy, written by the
driver for the raw frames a Ray worker returns (a 720p PNG costs about 50 ms to encode and 20 to
decode, the .npy about 2 and 1: the driver's time is what a cluster is limited by, issue 23).
`has`, `load` and `forget` take either."""
from __future__ import annotations

import json
import os
import shutil
from io import BytesIO
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..files import atomic_write_bytes, file_sha256
from ..frames import to_float, to_u8, video_size
from ..media import png
from ..media.images import Picture, check_working_size, read_image, write_image
from ..progress import Callback, Message
from ..settings import Settings, style_file_hashes
from .clip import Clip
from .delivery import output_frame_size

SEGMENTS = "segments.json"
_NPY_HEADER = 128  # np.save's header for a (h, w, 3) uint8 array (format 1.0, padded to 128 bytes)
WORK_VERSION = 3  # 3: encoded segments (pieces.py); 2: the settings digest. Older folders start fresh


class WorkDir:
    """Finished frames of one (input, settings) pair.

    meta.json holds the key (input content hash, digest of the settings and styles that change
    the frames, working size); a mismatch means the saved frames belong to another job, and the
    folder is emptied.
    """

    def __init__(self, output: Path, key: dict):
        self.output = output
        self.path = output.with_name(f".{output.name}.nstvid-work")
        self.key = key
        # What open() found changed, for the log's fields: names of the key's entries ("settings",
        # "frames"), "version" (another nstvid's folder) or "meta" (no readable meta.json).
        self.changed: list[str] = []

    @property
    def size(self) -> tuple[int, int]:
        """The working (h, w) of the frames."""
        h, w = self.key["size"]
        return h, w

    def open(self) -> str:
        """Make the folder ready; return why it starts fresh, or '' (kept or new)."""
        meta = self.path / "meta.json"
        reason = ""
        self.changed = []
        if meta.is_file():
            try:
                old = json.loads(meta.read_text())
            except (OSError, ValueError):
                old = None
            if old == self.key:
                return ""
            if not isinstance(old, dict):
                self.changed = ["meta"]
                reason = "the work folder's meta.json is unreadable, so its frames cannot be told apart"
            elif old.get("version") != self.key["version"]:
                self.changed = ["version"]
                reason = "the work folder was made by another nstvid version"
            else:
                self.changed = [k for k in self.key if old.get(k) != self.key.get(k)]
                reason = f"{', '.join(self.changed) or 'work folder'} changed since the interrupted run"
            shutil.rmtree(self.path)
        elif self.path.is_dir() and any(self.path.iterdir()):
            # Frames without the key that says whose they are: never the case after our own writes.
            self.changed = ["meta"]
            reason = "the work folder has no meta.json, so its frames cannot be told apart"
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        # Atomic: a meta.json cut short would make the next run discard this job's frames.
        atomic_write_bytes(meta, json.dumps(self.key, indent=1).encode())
        return reason

    def drop_damaged(self) -> list[int]:
        """Remove saved frames (and lead-in frames) that are not whole (cut short by a crash or a
        full disk: a PNG without IEND, a .npy shorter than its frame); return the frame indices
        removed, in order. Cheap: 12 bytes read per PNG, a stat per .npy. Damage inside a whole
        PNG is met when the frame is replayed (plan.produce)."""
        dropped = set()
        h, w = self.size
        for pattern, skip in (("frame_*", 6), ("lead_*", 5)):
            for path in self.path.glob(pattern):
                if not path.stem[skip:].isdigit():
                    continue
                if path.suffix == ".png":
                    whole = png.whole_file(path)
                elif path.suffix == ".npy":
                    whole = path.stat().st_size == _NPY_HEADER + h * w * 3
                else:
                    continue
                if not whole:
                    path.unlink(missing_ok=True)
                    dropped.add(int(path.stem[skip:]))
        return sorted(dropped)

    def frame_path(self, index: int) -> Path:
        return self.path / f"frame_{index:06d}.png"

    def lead_path(self, index: int) -> Path:
        """A lead-in frame of a --devices worker: its own chain's output for a frame that the
        previous worker owns, kept for the cross-fade between the two (devices.py)."""
        return self.path / f"lead_{index:06d}.png"

    def raw_path(self, index: int, *, lead: bool = False) -> Path:
        """A frame the driver keeps uncompressed (save_raw)."""
        return (self.lead_path(index) if lead else self.frame_path(index)).with_suffix(".npy")

    def saved_frames(self) -> set[tuple[int, bool]]:
        """(index, lead) of every saved frame, in either form, from one listing of the folder (a
        half-written frame is never named frame_* or lead_*)."""
        found = set()
        for entry in os.scandir(self.path):
            stem, _, suffix = entry.name.partition(".")
            kind, _, number = stem.partition("_")
            if suffix in ("png", "npy") and kind in ("frame", "lead") and number.isdigit():
                found.add((int(number), kind == "lead"))
        return found

    def saved_indices(self) -> set[int]:
        """Indices of the saved frames (not lead-in frames). Not always consecutive: with
        --devices, several workers fill the clip at once."""
        return {index for index, lead in self.saved_frames() if not lead}

    def has(self, index: int, *, lead: bool = False) -> bool:
        """Whether frame `index` (or its lead-in frame) is saved, in either form."""
        return (self.lead_path(index) if lead else self.frame_path(index)).is_file() or \
            self.raw_path(index, lead=lead).is_file()

    def save(self, index: int, rgb_u8: np.ndarray, *, lead: bool = False) -> Path:
        """Save as a PNG (a local worker's finished frame)."""
        path = self.lead_path(index) if lead else self.frame_path(index)
        write_image(path, Picture(to_float(rgb_u8)))  # atomic: whole or absent
        return path

    def save_raw(self, index: int, rgb_u8: np.ndarray, *, lead: bool = False) -> Path:
        """Save uncompressed (the driver's copy of a raw frame a worker returned)."""
        buffer = BytesIO()
        np.save(buffer, np.ascontiguousarray(rgb_u8, dtype=np.uint8), allow_pickle=False)
        path = self.raw_path(index, lead=lead)
        atomic_write_bytes(path, buffer.getvalue())
        return path

    def check_room(self, sample: Path, frames: int) -> None:
        """Fail now, not at 3 a.m., if `frames` more frames the size of the saved `sample` (plus the
        encoded video, well under a tenth of the PNGs at crf 18) will not fit on this disk."""
        need = sample.stat().st_size * frames * 1.1
        free = shutil.disk_usage(self.path).free
        if need > free:
            raise OutputError(self.path, f"disk too full: the resume frames need about {_bytes(need)} more "
                                         f"({frames} frames) and {_bytes(free)} is free; free some space "
                                         f"or use a smaller --size, then run again to resume")

    def segment_path(self, name: str, suffix: str) -> Path:
        """A segment's encoded frames, in the output's container (suffix: ".mp4", ...)."""
        return self.path / f"{name}{suffix}"

    def segments_done(self, encoding: str) -> dict[str, dict]:
        """{segment name: its record} for every recorded segment encoded as `encoding` (codec and
        crf: the frames stay valid when only those change, the segments do not) whose file is there
        with its recorded size and sha256; any other segment is done again. The caller checks each
        record's span against its plan: a rerun on another number of workers cuts the clip into
        other pieces, whose segments can have the same names."""
        try:
            records = json.loads((self.path / SEGMENTS).read_text())
        except (OSError, ValueError):
            return {}
        done = {}
        for name, record in records.items() if isinstance(records, dict) else ():
            if not isinstance(record, dict) or record.get("encoding") != encoding:
                continue
            if record.get("file") is None:  # raw frames only: the orchestrator checks those are saved
                done[name] = record
                continue
            path = self.path / str(record["file"])
            whole = path.is_file() and path.stat().st_size == record.get("bytes")
            if whole and file_sha256(path) == record.get("sha256"):
                done[name] = record
        return done

    def record_segment(self, name: str, span: tuple[int, int], path: Path | None, frames: int, encoding: str,
                       done: dict[str, dict]) -> None:
        """Add a stored segment to `done` and to segments.json (atomically: one writer, the driver);
        span: the clip's frames [first, stop) it was made of; path None: a segment whose frames all
        came back raw (a short piece's tail or lead-in)."""
        done[name] = {"file": None, "frames": 0, "encoding": encoding} if path is None else {
            "file": path.name, "frames": frames, "bytes": path.stat().st_size, "sha256": file_sha256(path),
            "encoding": encoding}
        done[name]["span"] = list(span)
        atomic_write_bytes(self.path / SEGMENTS, json.dumps(done, indent=1, sort_keys=True).encode())

    def forget(self, indices, *, lead: bool = False) -> None:
        """Drop saved frames that a stored segment now holds (disk stays flat in clip length)."""
        for index in indices:
            (self.lead_path(index) if lead else self.frame_path(index)).unlink(missing_ok=True)
            self.raw_path(index, lead=lead).unlink(missing_ok=True)

    def load(self, index: int, *, lead: bool = False) -> np.ndarray:
        """A saved frame, (h, w, 3) uint8, from either form."""
        raw = self.raw_path(index, lead=lead)
        if raw.is_file():
            return np.load(raw, allow_pickle=False)
        return to_u8(read_image(self.lead_path(index) if lead else self.frame_path(index)).rgb)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _bytes(n: float) -> str:
    """12 KB, 310 MB, 5.6 GB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1e3:.0f} KB"


def open_work(clip: Clip, output_path: Path, settings: Settings, progress: Callback) -> WorkDir:
    """The work folder of this (input, part of it, settings, styles, size), resumed when it
    matches (the orchestrator says how much of it is done)."""
    info = clip.info
    check_working_size(clip.path, (info.height, info.width), settings.size)
    h, w = video_size(info.width, info.height, settings.size)
    key = {"version": WORK_VERSION, "input": file_sha256(clip.path),
           "settings": settings.digest("video_frames", style_file_hashes(settings)),
           "size": [h, w], "frames": clip.key()}
    if info.variable_frame_rate or info.start:
        # Since issue 23 these inputs decode otherwise from a seek (VFR resampled on the file's own
        # timestamps, a delayed video's seeks timed from its first frame): a folder saved before this
        # key existed holds frames decoded the old way and starts fresh. Other inputs' folders,
        # whose frames did not change, still resume (WORK_VERSION is not raised for them).
        key["decode"] = 2
    work = WorkDir(output_path, key)
    reason = work.open()
    if reason:
        progress(Message(f"starting fresh: {reason}", code="video.fresh", fields={"changed": work.changed}))
    damaged = work.drop_damaged()
    if damaged:
        shown = ", ".join(str(i + 1) for i in damaged[:5]) + (", ..." if len(damaged) > 5 else "")
        progress(Message(f"{work.path}: {len(damaged)} saved frame(s) damaged (frame {shown}); each is "
                         "stylised again from the last good frame before it", level="warning",
                         code="video.frames_damaged", fields={"frames": [i + 1 for i in damaged]}))
    if info.variable_frame_rate:
        progress(Message(f"variable frame rate: resampling to a constant {float(info.fps):.3f} fps "
                         "so duration and audio sync are kept"))
    out_h, out_w = output_frame_size(clip, settings)
    progress(Message(f"{info.width}x{info.height} at {info.fps} fps -> {out_w}x{out_h} (painted at {w}x{h}), "
                     f"{clip.describe()}", code="video.clip",
                     fields={"width": out_w, "height": out_h, "working": [w, h], "fps": str(info.fps),
                             **clip.fields()}))
    return work
