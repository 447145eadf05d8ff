"""What earlier runs of a folder job finished: `<out>/.nstvid-manifest.json`, rewritten atomically,
plus an append-only journal of the entries changed since, so that recording a file costs the same
whatever the size of the folder.

Per input file (its path relative to the input folder) an entry records its size, mtime and SHA-256,
the settings hash, the status (started, done, failed) and the output path.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import InputError, OutputError
from ..media.images import atomic_write_bytes
from ..progress import Callback, Message, ignore
from ..settings import RUN_ONLY_FIELDS, Settings, earlier_forms, file_sha256

MANIFEST_NAME = ".nstvid-manifest.json"
JOURNAL_NAME = ".nstvid-manifest.journal"
JOURNAL_COMPACT_EVERY = 1000  # journal lines before the manifest is rewritten
MANIFEST_VERSION = 1
# Settings that only change how videos are made: an image's result does not depend on them.
VIDEO_ONLY_FIELDS = ("frame_iterations", "temporal_weight", "flow", "independent",
                     "scene_cut_threshold", "crf", "codec")


def settings_hashes(settings: Settings) -> dict[str, tuple[str, ...]]:
    """{'image': (...), 'video': (...)}: digests of the settings plus the style files' content
    hashes. The manifest records the first; a done file recorded under any of them stays done."""
    style_hashes = []
    for style in settings.styles:
        try:
            style_hashes.append(file_sha256(Path(style)))
        except OSError as e:
            raise InputError(style, f"style image not readable ({e.strerror or e})") from None

    def digest(exclude: tuple[str, ...], form: Settings = settings) -> str:
        blob = json.dumps([form.digest(exclude=("styles",) + exclude), style_hashes]).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    # The second digest is how manifests before RUN_ONLY_FIELDS recorded the same settings (device
    # included), so that upgrading does not redo every finished file once; videos also accept the
    # digests of their settings under earlier defaults (settings.CHANGED_DEFAULTS).
    earlier_image = ("compile", "batch", "devices") + VIDEO_ONLY_FIELDS
    return {"image": (digest(RUN_ONLY_FIELDS + VIDEO_ONLY_FIELDS), digest(earlier_image)),
            "video": (digest(RUN_ONLY_FIELDS), digest(("compile",)),
                      *(digest(RUN_ONLY_FIELDS, form) for form in earlier_forms(settings)))}


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
