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
* Lock: ``<out>/.nstvid.lock`` (created with O_EXCL, holding pid, host and start time, and kept
  ``flock``-ed for the run).  A live holder makes the run fail with LockedError (exit 3); a lock
  whose process is gone is taken over with a warning.
* KeyboardInterrupt (SIGINT; the CLI maps SIGTERM to it) abandons the current file (image writes
  are atomic, so no partial file ever stands at a final path), saves the manifest and the report,
  releases the lock and returns a summary whose exit code is 128 + the signal number (130 unless
  the interrupt carries another signal number as its first argument, e.g. KeyboardInterrupt(15)).
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
from .media.images import IMAGE_EXTENSIONS, atomic_write_bytes, looks_like_image
from .progress import Callback, FileDone, Message, ignore

try:  # the CLI's stop request (first SIGINT/SIGTERM: finish the file in hand, then stop)
    from .progress import NEVER_STOP, StopRequest
except ImportError:  # pragma: no cover - an older progress module
    NEVER_STOP, StopRequest = None, object
from .settings import Settings, file_sha256

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
                     "scene_cut_threshold", "crf", "codec", "batch")
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


def settings_hashes(settings: Settings) -> dict[str, str]:
    """{'image': ..., 'video': ...}: the settings digest plus the style files' content hashes."""
    style_hashes = []
    for style in settings.styles:
        try:
            style_hashes.append(file_sha256(Path(style)))
        except OSError as e:
            raise InputError(style, f"style image not readable ({e.strerror or e})") from None
    out = {}
    for kind, exclude in (("image", ("styles",) + VIDEO_ONLY_FIELDS), ("video", ("styles",))):
        blob = json.dumps([settings.digest(exclude=exclude), style_hashes]).encode()
        out[kind] = hashlib.sha256(blob).hexdigest()[:16]
    return out


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


def _decide(item: Item, entry: dict | None, digest: str, output_dir: Path, overwrite: bool,
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
            and entry.get("settings") == digest and entry.get("size") == item.size \
            and entry.get("mtime_ns") == item.mtime_ns:
        return _Plan(item, "fail", entry.get("error", "failed before"))  # unchanged: no second try
    out_exists = out_path.exists() or out_path.is_symlink()
    if entry and entry.get("status") == "done" and entry.get("settings") == digest \
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


def _run(input_dir, output_dir, settings, options, digests, image_suffix, manifest, summary, progress,
         started, stop) -> None:
    plans = _plan_all(input_dir, output_dir, options, digests, image_suffix, manifest.files, progress)
    todo = sum(p.action == "do" for p in plans)
    progress(Message(f"{len(plans)} files: {todo} to stylise, "
                     f"{sum(p.action == 'skip' for p in plans)} already done, "
                     f"{sum(p.action == 'fail' for p in plans)} unusable"))
    prepared = None
    index = 0
    for n, plan in enumerate(plans):
        item = plan.item
        digest = digests["video" if item.kind == "video" else "image"]
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
            continue
        if plan.action == "fail":
            _fail(record, plan.reason, 0.0, summary, progress)
            continue
        # Work to do, unless a stop was requested or the time is up.
        if stop and not summary.interrupted:
            summary.interrupted = True
            summary.exit_code = 128 + stop.signum
            left = sum(p.action == "do" for p in plans[n:])
            progress(Message(f"stopping on signal {stop.signum}: {left} file(s) left for the next run",
                             level="warning"))
        elif not summary.interrupted and not summary.stopped_early and options.max_runtime is not None \
                and time.monotonic() - started > options.max_runtime:
            summary.stopped_early = True
            left = sum(p.action == "do" for p in plans[n:])
            progress(Message(f"max runtime {options.max_runtime:g} s reached: stopping, {left} file(s) "
                             f"left for the next run"))
        if summary.interrupted or summary.stopped_early:
            record["status"] = "pending"
            record["error"] = "not started: " + ("interrupted" if summary.interrupted else "max runtime reached")
            summary.pending += 1
            continue
        if prepared is None:  # only now: a rerun with nothing to do never loads the network
            from . import api

            prepared = api.prepare(settings, progress)
        engine, styles = prepared
        index += 1
        progress(Message(f"[{index}/{todo}] {item.path} -> {out_path}"))
        t0 = time.perf_counter()
        try:
            sha = plan.sha256 or file_sha256(item.path)
            manifest.files[item.rel] = {"status": "started", "output": item.out_rel, "settings": digest,
                                        "size": item.size, "mtime_ns": item.mtime_ns, "sha256": sha}
            manifest.record(item.rel)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            _clean_stale_parts(out_path)
            if item.kind == "video":
                from .video_job import stylise_video

                extra = {} if stop is None else {"stop": stop}
                stylise_video(engine, styles, item.path, out_path, overwrite=True,
                              keep_frames=options.keep_frames, progress=progress, **extra)
            else:
                from .image_job import stylise_file

                stylise_file(engine, styles, item.path, out_path, overwrite=True, progress=progress)
        except (KeyboardInterrupt, Interrupted) as e:
            record["status"] = "pending"
            record["error"] = ("interrupted: resumes next run" if item.kind == "video"
                               else "interrupted: abandoned, redone next run")
            record["seconds"] = round(time.perf_counter() - t0, 3)
            summary.pending += 1
            summary.interrupted = True
            summary.exit_code = 128 + _signal_number(e)
            progress(Message(f"interrupted: {item.path} " + ("stopped (it resumes next run)" if item.kind == "video"
                             else "abandoned (it is redone next run)"), level="warning"))
            manifest.dirty = True
            continue  # the rest is only bookkeeping: skips and failures are listed, work is pending
        except ModuleNotFoundError as e:
            if e.name and e.name.endswith("video_job"):
                _record_failure(manifest, item, "video support is not installed (pipeline.video_job missing)",
                                record, t0, summary, progress)
            else:
                _record_failure(manifest, item, _first_line(e), record, t0, summary, progress)
            continue
        except (NstvidError, Exception) as e:  # noqa: BLE001 - one bad file must not end the job
            # Unusable content fails the same way every time: remember it.  Anything else
            # (disk full, out of memory, a missing module) is tried again next run.
            permanent = isinstance(e, InputError) and not isinstance(e, OutputError)
            _record_failure(manifest, item, _first_line(e), record, t0, summary, progress, permanent)
            continue
        seconds = time.perf_counter() - t0
        manifest.files[item.rel]["status"] = "done"
        manifest.files[item.rel]["seconds"] = round(seconds, 3)
        try:
            manifest.record(item.rel)  # a kill from here on does not cost this file
        except OutputError as e:
            progress(Message(f"{e}; saved at the end instead", level="warning"))
        record["status"] = "done"
        record["seconds"] = round(seconds, 3)
        summary.done += 1
        progress(FileDone(str(item.path), "done", seconds, output=str(out_path)))
    _finish(summary, progress, len(plans))


def _record_failure(manifest, item, reason, record, t0, summary, progress, permanent=False) -> None:
    entry = manifest.files.setdefault(item.rel, {})
    entry["status"] = "failed"
    entry["error"] = reason
    entry["permanent"] = permanent
    try:
        manifest.record(item.rel)
    except OutputError:
        pass  # saved at the end
    _fail(record, reason, time.perf_counter() - t0, summary, progress)


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
