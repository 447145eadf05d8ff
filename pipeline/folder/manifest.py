"""What earlier runs of a folder job finished: `<out>/.nstvid-manifest.json`, rewritten atomically,
plus an append-only journal of the entries changed since, so that recording a file costs the same
whatever the size of the folder.

Per input file (its path relative to the input folder) an entry records its size, mtime and SHA-256,
the settings hash, the status (started, done, failed) and the output path.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import OutputError
from ..media.images import atomic_write_bytes
from ..progress import Callback, Message, ignore
from ..settings import Settings, style_file_hashes

MANIFEST_NAME = ".nstvid-manifest.json"
JOURNAL_NAME = ".nstvid-manifest.journal"
JOURNAL_COMPACT_EVERY = 1000  # journal lines before the manifest is rewritten
# 2: digests from Settings.digest. Entries of an older version still say which outputs this job
# made, but their digests are not comparable: those files are redone, over their own outputs.
MANIFEST_VERSION = 2


def settings_hashes(settings: Settings) -> dict[str, str]:
    """{'image': digest, 'video': digest}: what a done file of each kind records, and must match
    to be skipped."""
    style_hashes = style_file_hashes(settings)
    return {kind: settings.digest(kind, style_hashes) for kind in ("image", "video")}


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
            if not isinstance(data.get("files"), dict) or not isinstance(data.get("version"), int):
                raise ValueError("not a manifest")
            if data["version"] > MANIFEST_VERSION:
                raise ValueError(f"made by a newer nstvid (manifest version {data['version']})")
            self.files = data["files"]
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
