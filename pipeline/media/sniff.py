"""What a file is, by its content first and its name second: the one rule that classifies inputs,
for a single file on the command line and for every file of a folder walk."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .images import STILL_EXTENSIONS, pillow_still

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
                    ".m2ts", ".wmv", ".asf", ".flv", ".3gp", ".3g2", ".ogv", ".vob", ".mxf", ".dv"}
HEAD_BYTES = 512
# Leading bytes of the image formats OpenCV decodes here.
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM")


def looks_like_image(head: bytes) -> bool:
    """The first bytes of a PNG, JPEG, TIFF, BMP or WebP file, or of a HEIC or AVIF photo (an
    ISO-BMFF file as an MP4 is, told apart by its ftyp brands)."""
    return (head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or pillow_still(head) is not None)


def looks_like_video(head: bytes) -> bool:
    """Container magic: ISO-BMFF (mp4/mov/3gp), Matroska/WebM, AVI, MPEG-TS/PS, ASF, FLV, Ogg.
    (A HEIC or AVIF photo is ISO-BMFF too: looks_like_image, asked first, claims it.)"""
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


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3  # a multi-byte character cut by the read


def claimed_kind(path: Path) -> str:
    """What the file's name says it is: 'an image', 'a video' or ''."""
    ext = path.suffix.lower()
    return "an image" if ext in STILL_EXTENSIONS else "a video" if ext in VIDEO_EXTENSIONS else ""


def classify(path: Path, st: os.stat_result | None = None) -> tuple[str, str]:
    """('image' | 'video' | 'bad' | 'unknown', reason) for a file, by content first, name second.

    'unknown': neither the content nor the name says image or video (a folder walk leaves it out;
    a file named on the command line goes to ffmpeg, which knows more formats than this sniffing).
    'bad' comes with a one-line reason. st: the file's os.stat, when the caller has it.
    """
    claimed = claimed_kind(path)
    try:
        st = st if st is not None else os.stat(path)
    except OSError as e:
        return "bad", "file not found" if isinstance(e, FileNotFoundError) else f"cannot read ({e.strerror or e})"
    if not stat.S_ISREG(st.st_mode):
        what = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "special")
        return ("bad", f"not a regular file ({what}): not {claimed}") if claimed else ("unknown", "")
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as e:
        return "bad", f"cannot read ({e.strerror or e})"
    if looks_like_image(head):
        return "image", ""
    if looks_like_video(head):
        return "video", ""
    if not claimed:
        return "unknown", ""
    if not head:
        return "bad", f"empty file (0 bytes): not {claimed}"
    if _is_text(head):
        return "bad", f"a text file named {path.suffix.lower()}: not {claimed}"
    if claimed == "a video":
        return "video", ""  # ffmpeg knows more containers than this sniffing: let it try
    return "bad", f"unrecognised content in a file named {path.suffix.lower()}: not {claimed}"
