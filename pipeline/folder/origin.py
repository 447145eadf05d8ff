"""What a folder job's output says of its own origin: the SHA-256 of the input it was made from and
the settings digest of its kind (manifest.settings_hashes), kept inside the file: a PNG tEXt
chunk, a JPEG comment, a video's `comment` tag (WebP and TIFF outputs hold none).

The manifest is what a rerun goes by; when it is lost or damaged, an output that proves it was made
from this input with these settings is kept (skipped, and recorded again), and one made from this
input with other settings is this job's own, replaced. Without a proof an existing output is
someone else's file, as before.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..media.images import read_record
from ..media.video import read_comment


def record(sha256: str, digest: str) -> str:
    """The text an output keeps: {"input": sha256, "settings": digest}."""
    return json.dumps({"input": sha256, "settings": digest}, sort_keys=True)


def origin(out_path: Path, kind: str) -> dict | None:
    """The record inside an existing output ({"input", "settings"}), or None when it holds none."""
    text = read_comment(out_path) if kind == "video" else read_record(out_path)
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return found if isinstance(found, dict) and {"input", "settings"} <= set(found) else None
