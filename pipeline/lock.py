"""One run per output folder: `<out>/.nstvid.lock`, created with O_EXCL, holding pid, host, boot and
process start time, and kept flock-ed for the run. A live holder makes a second run fail with
LockedError (exit 3); a lock whose process is gone (or whose pid was reused) is taken over with a
warning. Holders on another host always count as alive.

A single image or video takes the same kind of lock for its output, `.NAME.nstvid.lock` beside it
(output_lock), which covers its resume folder `.NAME.nstvid-work` too. A folder job's own videos
are covered by the folder's lock and take none of their own.
"""
from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from .errors import LockedError, OutputError
from .progress import Callback, Message, ignore

try:  # POSIX only; without it the O_EXCL lock plus the pid check still work.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

LOCK_NAME = ".nstvid.lock"


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

    def __init__(self, folder: Path, name: str = LOCK_NAME, holds: str = "this output folder"):
        self.path = folder / name
        self.holds = holds  # what the lock keeps to one run, for the message a second run gets
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
        return (f"{self.path}: another nstvid run (pid {pid}) holds {self.holds} "
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
                             f"(that run is no longer running)", level="warning", code="lock.stale_taken",
                             fields={"pid": info.get("pid")}))
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


def output_lock(output: Path) -> FolderLock:
    """The lock of a single image's or video's output (and its resume folder): `.NAME.nstvid.lock`
    beside it."""
    output = Path(output)
    return FolderLock(output.parent, f".{output.name}.nstvid.lock", "this output and its resume folder")
