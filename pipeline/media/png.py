"""PNG files at the level of their chunks: whether one is whole, and a text record inside one.

libpng reports a damaged file on stderr before OpenCV sees the failure (and warns there about
some colour profiles), so a PNG is checked here first and its iCCP profile, which OpenCV does not
use, is left out of what libpng reads. A tEXt chunk carries the record an output keeps of how it
was made (folder.triage: outputs that prove their origin).
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last 12 bytes of every whole PNG
_SKIPPED = {b"iCCP"}  # read by libpng (with warnings for some profiles), used by nobody here


def is_png(data: bytes) -> bool:
    return data[:8] == SIGNATURE


def _chunks(data: bytes):
    """(type, start, end) of each chunk, start..end its whole bytes (length, type, data, CRC);
    ValueError saying what is wrong with the first damaged one."""
    pos = 8
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError("cut short")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("cut short")
        crc = struct.unpack(">I", data[end - 4:end])[0]
        if zlib.crc32(data[pos + 4:end - 4]) != crc:
            raise ValueError(f"damaged ({kind.decode('latin-1')} chunk fails its checksum)")
        yield kind, pos, end
        if kind == b"IEND":
            return
        pos = end
    raise ValueError("cut short")


def checked(data: bytes) -> bytes:
    """The PNG's bytes for the decoder (iCCP left out); ValueError naming the damage."""
    if len(data) < 8 + len(IEND) or not data.endswith(IEND):
        raise ValueError("cut short")
    kept, dropped = [data[:8]], False
    for kind, start, end in _chunks(data):
        if kind in _SKIPPED:
            dropped = True
        else:
            kept.append(data[start:end])
    return b"".join(kept) if dropped else data


def whole_file(path: Path) -> bool:
    """Cheap: the file starts and ends as a whole PNG does (not cut short), without reading it all."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0, 2)
            if f.tell() < 8 + len(IEND):
                return False
            f.seek(-len(IEND), 2)
            return head == SIGNATURE and f.read() == IEND
    except OSError:
        return False


def with_text(data: bytes, key: str, text: str) -> bytes:
    """The PNG with a tEXt chunk key=text right after its header (IHDR)."""
    body = key.encode("latin-1") + b"\0" + text.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    ihdr_end = 8 + 12 + struct.unpack(">I", data[8:12])[0]
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def read_text(path: Path, key: str) -> str | None:
    """The text of the tEXt chunk named key before the image data, or None (no such chunk, not a
    PNG, unreadable). Reads the chunks ahead of the pixels only."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != SIGNATURE:
                return None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I4s", head)
                if kind in (b"IDAT", b"IEND") or length > 1 << 20:
                    return None
                body = f.read(length)
                f.read(4)
                if kind == b"tEXt" and body.partition(b"\0")[0] == key.encode("latin-1"):
                    return body.partition(b"\0")[2].decode("latin-1")
    except OSError:
        return None
