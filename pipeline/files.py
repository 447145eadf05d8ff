"""Files as the jobs keep them: a file's content hash (what caches, manifests and resume folders
are keyed by), and the atomic write every output and record goes through (a path holds the whole
file or nothing, even after kill -9)."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .errors import OutputError


def file_sha256(path: str | Path) -> str:
    """Content hash of a file (style images, inputs): what caches and manifests are keyed by."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to path so that path only ever holds the complete file."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise OutputError(folder, f"output folder not writable ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes 0600 files; outputs get the usual umask-based mode like any new file.
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(f.fileno(), 0o666 & ~umask)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(path, f"cannot write ({e.strerror})") from None
    except BaseException:  # even Ctrl-C: no temp file left behind, then re-raised
        Path(tmp).unlink(missing_ok=True)
        raise
