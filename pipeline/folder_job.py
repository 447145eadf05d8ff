"""Folder job: stylise every image and video under a folder into the same tree under an output folder.

Built to run from cron: resumable, lock-protected, and it tells a pipeline exactly what happened.

* Walk: recursive, sorted, by content (magic bytes), hidden files and output folders left out, symlink
  loops survived (each real folder is visited once, keyed by device and inode).
* Skip what is done: ``<out>/.nstvid-manifest.json`` (written atomically) records per input file its
  size, mtime and SHA-256, the settings hash, the status and the output path.  A file is skipped
  when its entry is ``done``, the settings hash and the planned output path are unchanged, the
  output still exists, and the input is unchanged (same size and mtime, or, when those moved, the
  same SHA-256).  Everything else is (re)done; videos resume through the video job's own resume.
* An output that exists at a final path is only replaced when the manifest says this job made it (a
  ``started``, ``failed`` or stale ``done`` entry with that output), or with ``--overwrite``.  A
  foreign file in the way is a per-file failure ("output exists, not made by this job").
  ``--overwrite`` does not force finished files to be redone: delete the manifest for that.
* Failures stay local: a bad file is reported through ``FileDone(..., "failed", error=...)``, the job
  goes on, and the exit code is 1.
* Batches: images that share a working size are stylised together, up to ``--batch`` per
  optimisation pass (auto: 1 on the CPU, 8 on CUDA, halved on out of memory).  The optimiser keeps
  per-image state, so a batch gives each image what a run on its own gives, up to float rounding.
  All images of a group are read before the pass, so an unreadable one fails alone; manifest
  entries, report records and ``FileDone`` events stay per file.  Videos run one at a time.
* Lock: ``<out>/.nstvid.lock`` (created with O_EXCL, holding pid, host and start time, and kept
  ``flock``-ed for the run).  A live holder makes the run fail with LockedError (exit 3); a lock
  whose process is gone is taken over with a warning.
* A stop request or ``--max-runtime`` is looked at before each optimisation pass (a video, or a batch
  of images).  KeyboardInterrupt (SIGINT; the CLI maps SIGTERM to it) abandons the files in hand
  (image writes are atomic, so no partial file ever stands at a final path), saves the manifest
  and the report, releases the lock and returns a summary whose exit code is 128 + the signal
  number (130 unless the interrupt carries another signal number as its first argument, e.g.
  KeyboardInterrupt(15)).
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import InputError, Interrupted, LockedError, NstvidError, OutputError, UsageError
from .media.images import (IMAGE_EXTENSIONS, Picture, atomic_write_bytes, fit_long_side, header_size,
                           looks_like_image, read_image, write_image)
from .progress import Callback, FileDone, Message, ignore

try:  # the CLI's stop request (first SIGINT/SIGTERM: finish the file in hand, then stop)
    from .progress import NEVER_STOP, StopRequest
except ImportError:  # pragma: no cover - an older progress module
    NEVER_STOP, StopRequest = None, object
from .settings import RUN_ONLY_FIELDS, Settings, file_sha256

try:  # POSIX only; without it the O_EXCL lock plus the pid check still work.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

MANIFEST_NAME = ".nstvid-manifest.json"
JOURNAL_NAME = ".nstvid-manifest.journal"
JOURNAL_COMPACT_EVERY = 1000  # journal lines before the manifest is rewritten
LOCK_NAME = ".nstvid.lock"
MANIFEST_VERSION = 1
REPORT_VERSION = 1

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
                    ".m2ts", ".wmv", ".asf", ".flv", ".3gp", ".3g2", ".ogv", ".vob", ".mxf", ".dv"}
# Settings that only change how videos are made: an image's result does not depend on them.
VIDEO_ONLY_FIELDS = ("frame_iterations", "temporal_weight", "flow", "independent",
                     "scene_cut_threshold", "crf", "codec")
HEAD_BYTES = 512


@dataclass(frozen=True)
class FolderOptions:
    image_format: str = "png"
    report: Path | None = None
    max_runtime: float | None = None  # seconds; stop starting new files after this
    dry_run: bool = False
    overwrite: bool = False  # replace outputs in the way that this job did not make
    keep_frames: bool = False


@dataclass
class FolderSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    records: list[dict] = field(default_factory=list)
    exit_code: int = 0
    pending: int = 0  # not started: --max-runtime reached, or interrupted
    interrupted: bool = False
    stopped_early: bool = False  # --max-runtime reached


@dataclass
class Item:
    """One file found by the walk."""

    rel: str  # POSIX-style path relative to the input folder
    path: Path
    kind: str  # image | video | bad
    error: str = ""
    size: int = 0
    mtime_ns: int = 0
    out_rel: str = ""


# ----------------------------------------------------------------------------------------------
# Walk


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3  # a multi-byte character cut by the read


def looks_like_video(head: bytes) -> bool:
    """Container magic: ISO-BMFF (mp4/mov/3gp), Matroska/WebM, AVI, MPEG-TS/PS, ASF, FLV, Ogg."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return True
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return True
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return True
    if len(head) > 196 and head[4] == 0x47 and head[196] == 0x47:  # M2TS: 4-byte timestamp prefix
        return True
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return True
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11") or head.startswith((b"FLV\x01", b"OggS")):
        return True
    # QuickTime files without ftyp start with another top-level atom.
    return len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def classify(path: Path, st: os.stat_result) -> tuple[str, str]:
    """('image' | 'video' | 'bad' | 'ignore', reason) for a file, by content first, name second."""
    ext = path.suffix.lower()
    claimed = "an image" if ext in IMAGE_EXTENSIONS else "a video" if ext in VIDEO_EXTENSIONS else ""
    if not stat.S_ISREG(st.st_mode):
        what = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "special")
        return ("bad", f"not a regular file ({what}): not {claimed}") if claimed else ("ignore", "")
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as e:
        return ("bad", f"cannot read ({e.strerror or e})") if claimed else ("ignore", "")
    if looks_like_image(path):
        return "image", ""
    if looks_like_video(head):
        return "video", ""
    if not claimed:
        return "ignore", ""
    if not head:
        return "bad", f"empty file (0 bytes): not {claimed}"
    if _is_text(head):
        return "bad", f"a text file named {ext}: not {claimed}"
    if claimed == "a video":
        return "video", ""  # ffmpeg knows more containers than our sniffing: let it try
    return "bad", f"unrecognised content in a file named {ext}: not {claimed}"


def _suffix_for(image_format: str) -> str:
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
    """Every candidate file under input_dir, sorted by relative path; bad files included as 'bad'."""
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
                if child.suffix.lower() in IMAGE_EXTENSIONS or child.suffix.lower() in VIDEO_EXTENSIONS:
                    reason = ("broken symbolic link" if entry.is_symlink() and isinstance(e, FileNotFoundError)
                              else e.strerror or str(e))
                    items.append(Item(child_rel, child, "bad", f"cannot read ({reason})"))
                continue
            kind, reason = classify(child, st)
            if kind != "ignore":
                items.append(Item(child_rel, child, kind, reason, st.st_size, st.st_mtime_ns))

    visit(input_dir, "")
    return items


def assign_outputs(items: list[Item], image_suffix: str) -> None:
    """photo.jpg -> photo.png, clip.mov -> clip.mp4.  When two inputs would share an output (a.jpg
    and a.png), the one whose name already has the output suffix keeps it and the others keep their
    full name plus the suffix (a.jpg.png)."""
    wanted: dict[str, list[Item]] = {}
    for item in items:
        if item.kind == "bad":
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


# ----------------------------------------------------------------------------------------------
# Manifest and report


def settings_hashes(settings: Settings) -> dict[str, tuple[str, ...]]:
    """{'image': (...), 'video': (...)}: digests of the settings plus the style files' content
    hashes. The manifest records the first; a done file recorded under any of them stays done."""
    style_hashes = []
    for style in settings.styles:
        try:
            style_hashes.append(file_sha256(Path(style)))
        except OSError as e:
            raise InputError(style, f"style image not readable ({e.strerror or e})") from None

    def digest(exclude: tuple[str, ...]) -> str:
        blob = json.dumps([settings.digest(exclude=("styles",) + exclude), style_hashes]).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # The second digest is how manifests before RUN_ONLY_FIELDS recorded the same settings (device
    # included), so that upgrading does not redo every finished file once.
    earlier_image = ("compile", "batch", "devices") + VIDEO_ONLY_FIELDS
    return {"image": (digest(RUN_ONLY_FIELDS + VIDEO_ONLY_FIELDS), digest(earlier_image)),
            "video": (digest(RUN_ONLY_FIELDS), digest(("compile",)))}


class Manifest:
    """{input rel path: entry}, kept as a JSON file (rewritten atomically) plus an append-only journal
    of the entries changed since (one JSON line each, fsync-ed), so that recording a file costs the
    same whatever the size of the folder.  Loading replays the journal; save() folds it in."""

    def __init__(self, path: Path, progress: Callback = ignore):
        self.path = path
        self.journal_path = path.with_name(JOURNAL_NAME)
        self.files: dict[str, dict] = {}
        self.dirty = False
        self._journal = None
        self._journaled = 0
        try:
            data = json.loads(path.read_text())
            if data.get("version") != MANIFEST_VERSION or not isinstance(data.get("files"), dict):
                raise ValueError("unknown manifest version")
            self.files = data["files"]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as e:
            progress(Message(f"{path}: unreadable manifest ({e}); every file is looked at afresh",
                             level="warning"))
        try:
            with open(self.journal_path, encoding="utf-8") as f:
                for line in f:
                    try:
                        change = json.loads(line)
                        self.files[change["rel"]] = change["entry"]
                    except (ValueError, KeyError, TypeError):
                        break  # a line cut short by a kill: everything before it counts
                    self.dirty = True
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as e:
            progress(Message(f"{self.journal_path}: unreadable ({e}); ignored", level="warning"))

    def record(self, rel: str) -> None:
        """Make files[rel] durable now (a journal line)."""
        self.dirty = True
        try:
            if self._journal is None:
                self._journal = open(self.journal_path, "a", encoding="utf-8")
            self._journal.write(json.dumps({"rel": rel, "entry": self.files[rel]}) + "\n")
            self._journal.flush()
            os.fsync(self._journal.fileno())
        except OSError as e:
            raise OutputError(self.journal_path, f"cannot record progress ({e.strerror or e})") from None
        self._journaled += 1
        if self._journaled >= JOURNAL_COMPACT_EVERY:
            self.save()

    def save(self) -> None:
        """Rewrite the manifest atomically with everything, then drop the journal."""
        data = {"version": MANIFEST_VERSION, "files": self.files}
        atomic_write_bytes(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self.journal_path.unlink(missing_ok=True)
        self._journaled = 0
        self.dirty = False

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _write_report(path: Path, summary: FolderSummary, input_dir: Path, output_dir: Path) -> None:
    data = {"version": REPORT_VERSION, "input": str(input_dir), "output": str(output_dir),
            "done": summary.done, "skipped": summary.skipped, "failed": summary.failed,
            "pending": summary.pending, "interrupted": summary.interrupted,
            "stopped_early": summary.stopped_early, "seconds": round(summary.seconds, 3),
            "exit_code": summary.exit_code, "files": summary.records}
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(path, f"cannot create the report's folder ({e.strerror or e})") from None
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


# ----------------------------------------------------------------------------------------------
# Lock


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' when unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


class FolderLock:
    """`<out>/.nstvid.lock`: created with O_EXCL, flock-ed while held, removed on release."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME
        self.fd: int | None = None

    def _read(self, fd: int) -> dict:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            return json.loads(os.read(fd, 4096).decode() or "{}")
        except (OSError, ValueError):
            return {}

    def _holder(self, info: dict) -> str:
        pid = info.get("pid", "?")
        where = info.get("host", "?")
        return (f"{self.path}: another nstvid run (pid {pid}) holds this output folder "
                f"(host {where}, started {info.get('started', '?')})")

    def _alive(self, info: dict) -> bool:
        """Is the run that wrote info still running?  Unknown hosts count as alive."""
        pid = info.get("pid")
        if not isinstance(pid, int):
            return False  # a lock file cut short before its holder could write it
        if info.get("host") != socket.gethostname():
            return True
        if not _pid_alive(pid):
            return False
        same_boot = info.get("boot_id") and info.get("boot_id") == _boot_id()
        if same_boot and info.get("proc_start") and info["proc_start"] != _proc_start(pid):
            return False  # the pid was reused by another process
        return bool(same_boot) or not info.get("boot_id")

    def _flock(self, fd: int) -> bool:
        if fcntl is None:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError:
            return True  # a filesystem without flock: rely on the pid check

    def _write(self, fd: int) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
                "boot_id": _boot_id(), "proc_start": _proc_start(os.getpid())}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(info) + "\n").encode())
        os.fsync(fd)

    def _same_file(self, fd: int) -> bool:
        try:
            a, b = os.fstat(fd), os.stat(self.path)
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def acquire(self, progress: Callback = ignore) -> None:
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
            except OSError as e:
                raise OutputError(self.path, f"cannot create the lock file ({e.strerror or e})") from None
            else:
                if not self._flock(fd):  # someone took it over in the instant before our flock
                    info = self._read(fd)
                    os.close(fd)
                    raise LockedError(self._holder(info))
                self._write(fd)
                self.fd = fd
                return
            try:
                fd = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                continue  # released meanwhile: try to create it again
            except OSError as e:
                raise OutputError(self.path, f"cannot open the lock file ({e.strerror or e})") from None
            if not self._flock(fd):
                info = self._read(fd)
                os.close(fd)
                raise LockedError(self._holder(info))
            if not self._same_file(fd):
                os.close(fd)  # removed and maybe recreated while we looked
                continue
            info = self._read(fd)
            if self._alive(info):
                os.close(fd)
                raise LockedError(self._holder(info))
            self._write(fd)
            self.fd = fd
            progress(Message(f"{self.path}: took over a stale lock from pid {info.get('pid', '?')} "
                             f"(that run is no longer running)", level="warning"))
            return
        raise LockedError(f"{self.path}: the lock keeps changing hands; another nstvid run is starting")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if self._same_file(self.fd):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = None


# ----------------------------------------------------------------------------------------------
# The job


def _signal_number(exc: BaseException) -> int:
    if isinstance(exc, Interrupted):
        return exc.signum
    if exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return int(signal.SIGINT)


def _clean_stale_parts(out_path: Path) -> None:
    """Temp files an earlier, killed run left beside this output (atomic writes use .NAME.*.part)."""
    try:
        for part in out_path.parent.glob(f".{out_path.name}.*.part"):
            part.unlink(missing_ok=True)
    except OSError:
        pass


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, InputError):
        return exc.problem
    text = str(exc).strip().splitlines()
    if isinstance(exc, NstvidError):
        return text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _Plan:
    """What to do with one item: 'skip', 'do' or 'fail' (with the reason)."""

    def __init__(self, item: Item, action: str, reason: str = "", sha256: str = ""):
        self.item, self.action, self.reason, self.sha256 = item, action, reason, sha256


def _decide(item: Item, entry: dict | None, digests: tuple[str, ...], output_dir: Path, overwrite: bool,
            input_files: set[Path]) -> _Plan:
    if item.kind == "bad":
        return _Plan(item, "fail", item.error)
    out_path = output_dir / item.out_rel
    try:
        if out_path.resolve() in input_files:
            return _Plan(item, "fail", f"output {out_path} would overwrite an input file")
    except OSError:
        pass
    if entry and entry.get("status") == "failed" and entry.get("permanent") \
            and entry.get("settings") in digests and entry.get("size") == item.size \
            and entry.get("mtime_ns") == item.mtime_ns:
        return _Plan(item, "fail", entry.get("error", "failed before"))  # unchanged: no second try
    out_exists = out_path.exists() or out_path.is_symlink()
    if entry and entry.get("status") == "done" and entry.get("settings") in digests \
            and entry.get("output") == item.out_rel and out_exists:
        if entry.get("size") == item.size and entry.get("mtime_ns") == item.mtime_ns:
            return _Plan(item, "skip")
        if entry.get("size") == item.size and entry.get("sha256"):
            try:
                sha = file_sha256(item.path)
            except OSError as e:
                return _Plan(item, "fail", f"cannot read ({e.strerror or e})")
            if sha == entry["sha256"]:
                return _Plan(item, "skip", sha256=sha)  # touched or copied, not changed
    if out_exists and not overwrite and not (entry and entry.get("output") == item.out_rel):
        if out_path.is_dir():
            return _Plan(item, "fail", f"output {out_path} is a folder")
        return _Plan(item, "fail", f"output {out_path} exists and was not made by this job "
                                   f"(pass --overwrite to replace it)")
    return _Plan(item, "do")


def run_folder(input_dir: Path, output_dir: Path, settings: Settings, options: FolderOptions,
               progress: Callback = ignore, stop: StopRequest | None = NEVER_STOP) -> FolderSummary:
    """Stylise every image and video under input_dir into the mirrored tree under output_dir.

    stop: set by the CLI on the first SIGINT/SIGTERM.  The file in hand is finished (a video stops
    at its next frame and keeps its resume state), no new file is started, and the summary comes
    back with exit_code 128 + signum (130 / 143) after the manifest, report and lock are settled.
    A KeyboardInterrupt (a second signal) abandons the file in hand the same way.
    """
    started = time.monotonic()
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise InputError(input_dir, "not a folder")
    image_suffix = _suffix_for(options.image_format)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(output_dir, "output exists and is not a folder (a folder input needs an output folder)")
    if output_dir.resolve() == input_dir.resolve():
        raise UsageError(f"{output_dir}: the output folder is the input folder; choose another -o")
    if options.max_runtime is not None and options.max_runtime < 0:
        raise UsageError(f"--max-runtime {options.max_runtime}: must not be negative")
    for style in settings.styles:
        if not Path(style).is_file():
            raise InputError(style, "style image not found")
    digests = settings_hashes(settings)

    if options.dry_run:
        return _dry_run(input_dir, output_dir, options, digests, image_suffix, progress, started)

    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(output_dir, f"cannot create the output folder ({e.strerror or e})") from None
    lock = FolderLock(output_dir)
    lock.acquire(progress)
    summary = FolderSummary()
    manifest = None
    try:
        manifest = Manifest(output_dir / MANIFEST_NAME, progress)
        _run(input_dir, output_dir, settings, options, digests, image_suffix, manifest, summary,
             progress, started, stop)
    except (KeyboardInterrupt, Interrupted) as e:  # between files, or during the walk
        summary.interrupted = True
        summary.exit_code = 128 + _signal_number(e)
    finally:
        summary.seconds = time.monotonic() - started
        try:
            if manifest is not None and manifest.dirty:
                manifest.save()
            if manifest is not None:
                manifest.close()
            if options.report is not None:
                _write_report(options.report, summary, input_dir, output_dir)
        finally:
            lock.release()
    return summary


def _plan_all(input_dir, output_dir, options, digests, image_suffix, manifest_files, progress):
    items = walk(input_dir, output_dir, progress)
    assign_outputs(items, image_suffix)
    input_files = set()
    for item in items:
        try:
            input_files.add(item.path.resolve())
        except OSError:
            pass
    plans = [_decide(item, manifest_files.get(item.rel), digests["video" if item.kind == "video" else "image"],
                     output_dir, options.overwrite, input_files) for item in items]
    return plans


def _dry_run(input_dir, output_dir, options, digests, image_suffix, progress, started) -> FolderSummary:
    manifest_files = Manifest(output_dir / MANIFEST_NAME, progress).files if output_dir.is_dir() else {}
    summary = FolderSummary()
    for plan in _plan_all(input_dir, output_dir, options, digests, image_suffix, manifest_files, progress):
        item = plan.item
        out = str(output_dir / item.out_rel) if item.out_rel else ""
        if plan.action == "skip":
            progress(Message(f"would skip {item.path} (done)"))
            status = "skipped"
            summary.skipped += 1
        elif plan.action == "fail":
            progress(Message(f"would fail {item.path}: {plan.reason}", level="warning"))
            status = "failed"
        else:
            progress(Message(f"would stylise {item.path} -> {out}"))
            status = "pending"
            summary.pending += 1
        summary.failed += status == "failed"
        summary.records.append({"path": str(item.path), "status": status, "error": plan.reason,
                                "seconds": 0.0, "output": out, "kind": item.kind})
    summary.seconds = time.monotonic() - started
    progress(Message(f"dry run: {summary.pending} to stylise, {summary.skipped} done, "
                     f"{summary.failed} would fail; nothing written"))
    return summary


# Images per optimisation pass on CUDA when --batch is 0 (auto); halved per working size on out of
# memory.  For video frames the auto trial found batch 16 1.37x faster than batch 1 at 512x288 on
# an H200 and no gain at 1280x720 (docs/design.md); 8 is a middle choice, not measured for images.
AUTO_CUDA_IMAGE_BATCH = 8


def _image_batch(settings: Settings) -> int:
    """Images per optimisation pass: --batch N, or auto: 1 off CUDA (no gain on the CPU, as for
    video frames), AUTO_CUDA_IMAGE_BATCH on CUDA."""
    if settings.batch > 0:
        return settings.batch
    from .engine import pick_device

    return AUTO_CUDA_IMAGE_BATCH if pick_device(settings.device).type == "cuda" else 1


@dataclass
class _Task:
    """A file to stylise and its report record, filled in as the work goes."""

    item: Item
    out_path: Path
    digest: str  # settings hash the manifest records
    sha256: str  # known from planning, or "" (hashed when the file is begun)
    record: dict
    picture: Picture | None = None  # images: read and at working size while their group runs
    seconds: float = 0.0  # wall time spent on this file, its share of a batch included


def _units(tasks: list[_Task], long_side: int, batch: int) -> list[list[_Task]]:
    """Split tasks into units of work: each video alone, images of one working size in groups of up
    to `batch`.  A unit stands where its first file is in walk order.  Sizes come from the file
    headers (no decoding); a file whose header says nothing is a group of its own.  The header is
    only a hint: _Job.run_images regroups by the size the decoder finds."""
    units: list[list[_Task]] = []
    filling: dict[object, list[_Task]] = {}  # working size -> the group still taking images
    for task in tasks:
        if task.item.kind == "video" or batch == 1:
            units.append([task])
            continue
        header = header_size(task.item.path)
        key = fit_long_side(header, long_side) if header else id(task)
        group = filling.get(key)
        if group is None or len(group) >= batch:
            group = filling[key] = []
            units.append(group)
        group.append(task)
    return units


def _failure(exc: BaseException) -> tuple[str, bool]:
    """(one-line reason, permanent) for a file's failure.  Unusable content fails the same way every
    time: remembered as permanent.  Anything else (disk full, out of memory, a missing module) is
    tried again next run."""
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.endswith("video_job"):
        return "video support is not installed (pipeline.video_job missing)", False
    return _first_line(exc), isinstance(exc, InputError) and not isinstance(exc, OutputError)


def _free_device_memory(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()


class _Job:
    """The work of one folder run: units of tasks (see _units), the stop / --max-runtime check before
    each optimisation pass, and the bookkeeping for each file (manifest, report record, FileDone)."""

    def __init__(self, settings: Settings, options: FolderOptions, manifest: Manifest,
                 summary: FolderSummary, progress: Callback, started: float, stop, todo: int, batch: int):
        self.settings, self.options, self.manifest = settings, options, manifest
        self.summary, self.progress, self.started, self.stop = summary, progress, started, stop
        self.todo = todo
        self.open = todo  # tasks without a status yet: "left for the next run" when stopping
        self.index = 0  # files begun, for the "[index/todo]" lines
        self.batch = batch
        self.fits: dict[tuple[int, int], int] = {}  # working size -> batch halved after out of memory
        self._prepared = None

    def prepared(self):
        """(engine, styles), built at the first file: a rerun with nothing to do never loads the network."""
        if self._prepared is None:
            from . import api

            self._prepared = api.prepare(self.settings, self.progress)
        return self._prepared

    # -- stopping

    def halted(self) -> bool:
        """True when no new work may start: a stop request, an interrupt or --max-runtime (said once)."""
        s = self.summary
        if s.interrupted or s.stopped_early:
            return True
        if self.stop:
            s.interrupted = True
            s.exit_code = 128 + self.stop.signum
            self.progress(Message(f"stopping on signal {self.stop.signum}: {self.open} file(s) left for "
                                  "the next run", level="warning"))
            return True
        if self.options.max_runtime is not None and time.monotonic() - self.started > self.options.max_runtime:
            s.stopped_early = True
            self.progress(Message(f"max runtime {self.options.max_runtime:g} s reached: stopping, "
                                  f"{self.open} file(s) left for the next run"))
            return True
        return False

    def not_started(self, task: _Task) -> None:
        task.record["status"] = "pending"
        task.record["error"] = "not started: " + ("interrupted" if self.summary.interrupted
                                                  else "max runtime reached")
        self.summary.pending += 1
        self.open -= 1

    def interrupted(self, tasks: list[_Task], exc: BaseException) -> None:
        """A second signal (KeyboardInterrupt) or a video's Interrupted: the files in hand are abandoned
        (a video keeps its resume state) and left pending; the rest is only bookkeeping."""
        s = self.summary
        s.interrupted = True
        s.exit_code = 128 + _signal_number(exc)
        for task in tasks:
            video = task.item.kind == "video"
            task.record["status"] = "pending"
            task.record["error"] = ("interrupted: resumes next run" if video
                                    else "interrupted: abandoned, redone next run")
            task.record["seconds"] = round(task.seconds, 3)
            s.pending += 1
            self.open -= 1
            self.progress(Message(f"interrupted: {task.item.path} " + (
                "stopped (it resumes next run)" if video else "abandoned (it is redone next run)"),
                level="warning"))
        self.manifest.dirty = True

    # -- one file's bookkeeping

    def begin(self, task: _Task) -> None:
        """Record the file as started (so that a rerun may replace the output it leaves) and make its
        output folder.  Raises OSError / OutputError: the file fails."""
        item = task.item
        sha = task.sha256 or file_sha256(item.path)
        self.manifest.files[item.rel] = {"status": "started", "output": item.out_rel, "settings": task.digest,
                                         "size": item.size, "mtime_ns": item.mtime_ns, "sha256": sha}
        self.manifest.record(item.rel)
        task.out_path.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale_parts(task.out_path)

    def announce(self, task: _Task) -> None:
        self.index += 1
        self.progress(Message(f"[{self.index}/{self.todo}] {task.item.path} -> {task.out_path}"))

    def fail(self, task: _Task, error: BaseException | str) -> None:
        reason, permanent = (error, False) if isinstance(error, str) else _failure(error)
        entry = self.manifest.files.setdefault(task.item.rel, {})
        entry["status"] = "failed"
        entry["error"] = reason
        entry["permanent"] = permanent
        try:
            self.manifest.record(task.item.rel)
        except OutputError:
            pass  # saved at the end
        self.open -= 1
        _fail(task.record, reason, task.seconds, self.summary, self.progress)

    def done(self, task: _Task) -> None:
        entry = self.manifest.files[task.item.rel]
        entry["status"] = "done"
        entry["seconds"] = round(task.seconds, 3)
        try:
            self.manifest.record(task.item.rel)  # a kill from here on does not cost this file
        except OutputError as e:
            self.progress(Message(f"{e}; saved at the end instead", level="warning"))
        task.record["status"] = "done"
        task.record["seconds"] = round(task.seconds, 3)
        self.summary.done += 1
        self.open -= 1
        self.progress(FileDone(str(task.item.path), "done", task.seconds, output=str(task.out_path)))

    # -- the work

    def run_video(self, task: _Task) -> None:
        # --devices: the video's workers build their own engines; this process only encodes.
        engine, styles = (None, None) if self.settings.devices else self.prepared()
        self.announce(task)
        t0 = time.perf_counter()
        try:
            self.begin(task)
            extra = {} if self.stop is None else {"stop": self.stop}
            if self.settings.devices:
                from .video_workers import stylise_video_on_devices

                stylise_video_on_devices(self.settings, task.item.path, task.out_path, overwrite=True,
                                         keep_frames=self.options.keep_frames, progress=self.progress,
                                         **extra)
            else:
                from .video_job import stylise_video

                stylise_video(engine, styles, task.item.path, task.out_path, overwrite=True,
                              keep_frames=self.options.keep_frames, progress=self.progress, **extra)
        except (KeyboardInterrupt, Interrupted) as e:
            task.seconds = time.perf_counter() - t0
            self.interrupted([task], e)
            return
        except Exception as e:  # noqa: BLE001 - one bad file must not end the job
            task.seconds = time.perf_counter() - t0
            self.fail(task, e)
            return
        task.seconds = time.perf_counter() - t0
        self.done(task)

    def run_images(self, tasks: list[_Task]) -> None:
        """Read every image of a group first, then stylise those of one working size together.

        A file that cannot be read (corrupt, gone, output folder not writable) fails alone here,
        before any optimisation; the others go on as a batch.  Pictures are kept at their working
        size only, so a group of large photos costs little memory while it waits."""
        from .image_job import check_output, to_working_size

        self.prepared()
        try:
            for task in tasks:
                self.announce(task)
                t0 = time.perf_counter()
                try:
                    self.begin(task)
                    check_output(task.item.path, task.out_path, overwrite=True)
                    task.picture = to_working_size(read_image(task.item.path), self.settings.size)
                except Exception as e:  # noqa: BLE001 - this file fails, its group goes on
                    task.seconds += time.perf_counter() - t0
                    self.fail(task, e)
                    continue
                task.seconds += time.perf_counter() - t0
            by_size: dict[tuple[int, int], list[_Task]] = {}
            for task in tasks:
                if task.picture is not None:
                    by_size.setdefault(task.picture.size, []).append(task)
            for k, (size, same_size) in enumerate(by_size.items()):
                self._stylise_batches(size, same_size, check_first=k > 0)
        except (KeyboardInterrupt, Interrupted) as e:
            self.interrupted([t for t in tasks if not t.record["status"]], e)
        finally:
            for task in tasks:
                task.picture = None

    def _stylise_batches(self, size: tuple[int, int], tasks: list[_Task], check_first: bool) -> None:
        """Stylise tasks whose pictures are all of working size (h, w), in optimisation passes of up
        to self.batch images; on out of memory the batch for this size is halved and the pass
        retried, down to a single image, which then fails alone ("try a smaller --size").

        A stop request or --max-runtime is looked at before each pass but a unit's first, which
        _run cleared just before the unit (check_first False): a unit once begun does some work."""
        import torch

        from .image_job import stylise_pictures

        engine, styles = self.prepared()
        h, w = size
        check = check_first
        while tasks:
            if check and self.halted():
                for task in tasks:
                    self.not_started(task)
                return
            check = True
            n = min(len(tasks), self.fits.get(size, self.batch))
            chunk = tasks[:n]
            if n > 1:
                self.progress(Message(f"batch of {n} images at {w}x{h}"))
            t0 = time.perf_counter()
            try:
                styled, _ = stylise_pictures(engine, styles, [t.picture for t in chunk], self.progress)
            except torch.OutOfMemoryError:
                _free_device_memory(engine.device)
                if n > 1:
                    self.fits[size] = n // 2
                    self.progress(Message(f"out of memory: batch at {w}x{h} halved to {n // 2}, retried",
                                          level="warning"))
                    continue
                chunk[0].seconds += time.perf_counter() - t0
                self.fail(chunk[0], f"one {w}x{h} image does not fit in {engine.device} memory; "
                                    "try a smaller --size")
                tasks = tasks[1:]
                continue
            except Exception as e:  # noqa: BLE001 - the pass failed for all its files; the job goes on
                share = (time.perf_counter() - t0) / n
                for task in chunk:
                    task.seconds += share
                    self.fail(task, e)
                tasks = tasks[n:]
                continue
            share = (time.perf_counter() - t0) / n
            for task, picture in zip(chunk, styled):
                t1 = time.perf_counter()
                try:
                    write_image(task.out_path, picture)  # atomic: a temp file renamed into place
                except Exception as e:  # noqa: BLE001 - e.g. disk full: this file fails
                    task.seconds += share + time.perf_counter() - t1
                    self.fail(task, e)
                    continue
                task.seconds += share + time.perf_counter() - t1
                self.done(task)
            tasks = tasks[n:]


def _run(input_dir, output_dir, settings, options, digests, image_suffix, manifest, summary, progress,
         started, stop) -> None:
    plans = _plan_all(input_dir, output_dir, options, digests, image_suffix, manifest.files, progress)
    todo = sum(p.action == "do" for p in plans)
    progress(Message(f"{len(plans)} files: {todo} to stylise, "
                     f"{sum(p.action == 'skip' for p in plans)} already done, "
                     f"{sum(p.action == 'fail' for p in plans)} unusable"))
    tasks: list[_Task] = []
    for plan in plans:
        item = plan.item
        out_path = output_dir / item.out_rel if item.out_rel else None
        record = {"path": str(item.path), "status": "", "error": "", "seconds": 0.0,
                  "output": str(out_path) if out_path else "", "kind": item.kind}
        summary.records.append(record)
        if plan.action == "skip":
            record["status"] = "skipped"
            summary.skipped += 1
            entry = manifest.files[item.rel]
            if entry.get("mtime_ns") != item.mtime_ns:
                entry["mtime_ns"] = item.mtime_ns  # same content, new timestamp: no hashing next time
                manifest.dirty = True
            progress(FileDone(str(item.path), "skipped", 0.0, output=record["output"]))
        elif plan.action == "fail":
            _fail(record, plan.reason, 0.0, summary, progress)
        else:
            digest = digests["video" if item.kind == "video" else "image"][0]
            tasks.append(_Task(item, out_path, digest, plan.sha256, record))
    batch = _image_batch(settings) if any(t.item.kind == "image" for t in tasks) else 1
    job = _Job(settings, options, manifest, summary, progress, started, stop, len(tasks), batch)
    for unit in _units(tasks, settings.size, batch):
        if job.halted():
            for task in unit:
                job.not_started(task)
        elif unit[0].item.kind == "video":
            job.run_video(unit[0])
        else:
            job.run_images(unit)
    _finish(summary, progress, len(plans))


def _fail(record, reason, seconds, summary, progress) -> None:
    record["status"] = "failed"
    record["error"] = reason
    record["seconds"] = round(seconds, 3)
    summary.failed += 1
    progress(FileDone(record["path"], "failed", seconds, error=reason, output=record["output"]))


def _finish(summary: FolderSummary, progress: Callback, total: int) -> None:
    if not summary.interrupted:
        summary.exit_code = 1 if summary.failed else 0
    if summary.done == 0 and summary.pending == 0:
        progress(Message(f"nothing to do: {summary.skipped} of {total} files already done"
                         + (f", {summary.failed} unusable" if summary.failed else "")))
