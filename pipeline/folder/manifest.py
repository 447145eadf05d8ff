"""What earlier runs of a folder job finished: `<out>/.nstvid-manifest.json`, rewritten atomically,
plus an append-only journal of the entries changed since, so that recording a file costs the same
whatever the size of the folder.

Per input file (its path relative to the input folder) an entry records its size, mtime and SHA-256,
the settings hash, the status (started, done, failed) and the output path.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TextIO

from ..errors import OutputError
from ..files import atomic_write_bytes
from ..outputs import MANIFEST_NAME  # noqa: F401 - the manifest's name, where its readers look for it
from ..progress import Callback, Message, ignore
from ..settings import STILL, Settings, style_file_hashes

JOURNAL_NAME = ".nstvid-manifest.journal"
JOURNAL_COMPACT_EVERY = 1000  # journal lines before the manifest is rewritten
# 2: digests from Settings.digest. Entries of an older version still say which outputs this job
# made, but their digests are not comparable: those files are redone, over their own outputs.
MANIFEST_VERSION = 2


def settings_hashes(settings: Settings) -> dict[str, str]:
    """{'image': digest, 'video': digest}: what a done file of each kind records, and must match
    to be skipped (an image file is delivered as a still)."""
    style_hashes = style_file_hashes(settings)
    return {"image": settings.digest(STILL, style_hashes), "video": settings.digest("video", style_hashes)}


class Manifest:
    """{input rel path: entry}, kept as a JSON file (rewritten atomically) plus an append-only journal
    of the entries changed since (one JSON line each, fsync-ed), so that recording a file costs the
    same whatever the size of the folder.  Loading replays the journal; save() folds it in.

    An entry changes through the methods below only: started (durable at once), proven and touched
    (saved at the end), done and failed (durable at once; OutputError when the journal cannot be
    written, the entry then saved at the end)."""

    def __init__(self, path: Path, progress: Callback = ignore):
        self.path = path
        self.journal_path = path.with_name(JOURNAL_NAME)
        self._files: dict[str, dict] = {}  # read through `entries`, changed by the methods below
        self._dirty = False  # entries changed since the last save
        self._journal: TextIO | None = None
        self._journaled = 0
        try:
            data = json.loads(path.read_text())
            if not isinstance(data.get("files"), dict) or not isinstance(data.get("version"), int):
                raise ValueError("not a manifest")
            if data["version"] > MANIFEST_VERSION:
                raise ValueError(f"made by a newer nstvid (manifest version {data['version']})")
            self._files = data["files"]
            if data["version"] < MANIFEST_VERSION:
                progress(Message(f"{path}: made by an older nstvid; its files are stylised again "
                                 "(their outputs are replaced, as this job's own)", level="warning",
                                 code="manifest.older"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as e:
            progress(Message(f"{path}: unreadable manifest ({e}); rebuilt: outputs that prove their origin "
                             "are kept, the other files stylised again", level="warning",
                             code="manifest.unreadable"))
        try:
            with open(self.journal_path, encoding="utf-8") as f:
                for line in f:
                    try:
                        change = json.loads(line)
                        self._files[change["rel"]] = change["entry"]
                    except (ValueError, KeyError, TypeError):
                        break  # a line cut short by a kill: everything before it counts
                    self._dirty = True
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as e:
            progress(Message(f"{self.journal_path}: unreadable ({e}); ignored", level="warning"))

    @property
    def entries(self) -> Mapping[str, dict]:
        """{input rel path: entry}, read-only (triage.py decides from them)."""
        return MappingProxyType(self._files)

    @property
    def changed(self) -> bool:
        """Whether entries changed since the last save."""
        return self._dirty

    def sha256(self, rel: str) -> str:
        """The SHA-256 of a begun file's input, as its entry records it."""
        return self._files[rel]["sha256"]

    def started(self, rel: str, *, output: str, settings: str, size: int, mtime_ns: int, sha256: str) -> None:
        """A file begins (so that a rerun may replace the output it leaves); durable now."""
        self._files[rel] = {"status": "started", "output": output, "settings": settings, "size": size,
                           "mtime_ns": mtime_ns, "sha256": sha256}
        self._record(rel)

    def proven(self, rel: str, *, output: str, settings: str, size: int, mtime_ns: int, sha256: str) -> None:
        """No entry, but the output's own record proves it done (origin.py): recorded again."""
        self._files[rel] = {"status": "done", "output": output, "size": size, "settings": settings,
                           "mtime_ns": mtime_ns, "sha256": sha256}
        self._dirty = True

    def touched(self, rel: str, mtime_ns: int) -> None:
        """A skipped file of the same content and a new timestamp: no hashing next time."""
        entry = self._files[rel]
        if entry.get("mtime_ns") != mtime_ns:
            entry["mtime_ns"] = mtime_ns
            self._dirty = True

    def done(self, rel: str, seconds: float) -> None:
        """The file is done: a kill from here on does not cost it."""
        self._files[rel].update(status="done", seconds=round(seconds, 3))
        self._record(rel)

    def failed(self, rel: str, reason: str, permanent: bool) -> None:
        """The file failed; permanent: unusable content, not tried again while it is unchanged."""
        self._files.setdefault(rel, {}).update(status="failed", error=reason, permanent=permanent)
        self._record(rel)

    def abandoned(self) -> None:
        """Files in hand were left (interrupted): their entries are saved at the end."""
        self._dirty = True

    def finish(self) -> None:
        """At the job's end, however it ends: save what changed, close the journal."""
        if self._dirty:
            self.save()
        self.close()

    def _record(self, rel: str) -> None:
        """Make files[rel] durable now (a journal line)."""
        self._dirty = True
        try:
            if self._journal is None:
                self._journal = open(self.journal_path, "a", encoding="utf-8")
            self._journal.write(json.dumps({"rel": rel, "entry": self._files[rel]}) + "\n")
            self._journal.flush()
            os.fsync(self._journal.fileno())
        except OSError as e:
            raise OutputError(self.journal_path, f"cannot record progress ({e.strerror or e})") from None
        self._journaled += 1
        if self._journaled >= JOURNAL_COMPACT_EVERY:
            self.save()

    def save(self) -> None:
        """Rewrite the manifest atomically with everything, then drop the journal."""
        data = {"version": MANIFEST_VERSION, "files": self._files}
        atomic_write_bytes(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self.journal_path.unlink(missing_ok=True)
        self._journaled = 0
        self._dirty = False

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
