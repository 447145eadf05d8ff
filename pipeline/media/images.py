"""Still images: read and write with OpenCV, atomically.

In memory an image is a `Picture`: RGB float32 in [0, 1], shape (H, W, 3), plus an optional alpha
plane (H, W) that is carried through untouched, and the bit depth it came with.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, OutputError
from ..files import atomic_write_bytes
from ..settings import IMAGE_FORMATS, MIN_SIDE
from . import png

# OpenCV's own log lines ("[ WARN:0@0.2] global loadsave.cpp ...") would reach the terminal glued to
# nstvid's; every failure they describe is raised here as a one-line error instead.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

# Extension -> the format's own (".jpeg" -> ".jpg"), from the one list of image formats.
IMAGE_EXTENSIONS = {f".{extension}": f".{name}" for name, extensions in IMAGE_FORMATS.items()
                    for extension in extensions}
SIXTEEN_BIT_FORMATS = {".png", ".tiff"}


@dataclass(frozen=True)
class PillowStill:
    """A photo format OpenCV does not decode, read through Pillow: an ISO-BMFF file (the box
    structure of an MP4) whose `ftyp` brands say still image, not video."""

    name: str
    extensions: tuple[str, ...]
    brands: tuple[bytes, ...]  # ftyp brands of the format's stills
    plugin: str  # the module that teaches Pillow the format ("": Pillow's own)
    missing: str  # what to install where the decoder is missing


# HEIC is every iPhone's default; AVIF the web's and newer Android phones'. Image sequences (avis,
# msf1) and movies are left to ffmpeg as video.
PILLOW_STILLS = (
    PillowStill("AVIF", (".avif",), (b"avif",), "", "Pillow 11.2 or later (pip install -U pillow)"),
    PillowStill("HEIC", (".heic", ".heif", ".hif"), (b"heic", b"heix", b"heim", b"heis", b"mif1", b"mif2"),
                "pillow_heif", "pillow-heif (pip install '.[heif]' in the nstvid folder)"),
)
# Every extension a still photo may have: OpenCV's and Pillow's.
STILL_EXTENSIONS = {*IMAGE_EXTENSIONS, *(ext for still in PILLOW_STILLS for ext in still.extensions)}


def pillow_still(head: bytes) -> PillowStill | None:
    """The PILLOW_STILLS format whose ftyp brands the file's first bytes carry, or None. The major
    brand decides; a generic one (mif1, miaf) defers to the compatible brands (AVIF's say avif)."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    end = min(int.from_bytes(head[:4], "big"), len(head))
    major = head[8:12]
    brands = {head[k:k + 4] for k in range(16, end - 3, 4)} if major in (b"mif1", b"mif2", b"miaf") else {major}
    # AVIF first: an AVIF's compatible brands name the generic mif1 too.
    return next((still for still in PILLOW_STILLS if brands & set(still.brands)), None)


def _open_with_pillow(still: PillowStill, path: str | Path):
    """Pillow's Image module, taught `still`; InputError naming what to install where it cannot be."""
    from PIL import Image, features

    if still.plugin:
        try:
            __import__(still.plugin).register_heif_opener()
        except ImportError:
            raise InputError(path, f"a {still.name} photo: decoding it needs {still.missing}") from None
    elif not features.check(still.name.lower()):
        raise InputError(path, f"a {still.name} photo: decoding it needs {still.missing}")
    return Image


def _decode_with_pillow(data: np.ndarray, path: str | Path, still: PillowStill) -> Picture:
    """A HEIC or AVIF photo as a Picture: 8 bits, EXIF orientation applied, alpha carried."""
    import io

    Image = _open_with_pillow(still, path)
    from PIL import ImageOps

    try:
        with Image.open(io.BytesIO(data.tobytes())) as opened:
            image = ImageOps.exif_transpose(opened)
            bands = image.getbands()
            alpha = "A" in bands
            pixels = np.asarray(image.convert("RGBA" if alpha else "RGB"), dtype=np.float32) / 255.0
    except Exception as e:  # noqa: BLE001 - any decoder failure of a damaged file: one line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(path, f"not a {still.name} photo Pillow can decode ({reason})") from None
    rgb = np.ascontiguousarray(pixels[..., :3])
    return Picture(rgb, pixels[..., 3].copy() if alpha else None, 8, bands in (("L",), ("L", "A")))


@dataclass
class Picture:
    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    alpha: np.ndarray | None = None  # (H, W) float32 in [0, 1], or None
    bit_depth: int = 8  # 8 or 16: what the file held, and what we write back where the format allows
    grayscale: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.rgb.shape[0], self.rgb.shape[1]


def read_image(path: str | Path) -> Picture:
    """Decode an image file. Raises InputError("<path>: <problem>") for anything unusable."""
    path = Path(path)
    try:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not an image") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror})") from None
    return decode_image(data, path)


def decode_image(data: bytes | np.ndarray, path: str | Path) -> Picture:
    """Decode the bytes of an image file; path names it in the InputError for anything unusable."""
    data = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
    if data.size == 0:
        raise InputError(path, "empty file (0 bytes)")
    still = pillow_still(data[:64].tobytes())
    if still is not None:
        return _decode_with_pillow(data, path, still)
    if png.is_png(data[:8].tobytes()):
        try:  # before libpng, which prints its complaints on stderr
            data = np.frombuffer(png.checked(data.tobytes()), dtype=np.uint8)
        except ValueError as e:
            raise InputError(path, f"not an image OpenCV can decode (corrupt: PNG {e})") from None
    # IMREAD_UNCHANGED keeps alpha and 16 bits but ignores EXIF orientation; the ANYDEPTH|ANYCOLOR
    # decode applies orientation. Use the oriented decode unless the file has alpha to carry.
    raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if raw is None or raw.size == 0:
        raise InputError(path, "not an image OpenCV can decode (corrupt or unsupported format)")
    alpha = None
    if raw.ndim == 3 and raw.shape[2] == 4:
        img, alpha = raw[..., :3], raw[..., 3]
    else:
        oriented = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
        img = oriented if oriented is not None else raw
    if img.dtype == np.uint16:
        depth, peak = 16, 65535.0
    elif img.dtype == np.uint8:
        depth, peak = 8, 255.0
    elif img.dtype in (np.float32, np.float64):
        depth, peak = 16, 1.0
    else:
        raise InputError(path, f"unsupported pixel type {img.dtype}")
    gray = img.ndim == 2 or img.shape[2] == 1
    if gray:
        img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
    else:
        img = img[..., ::-1]  # BGR -> RGB
    rgb = np.ascontiguousarray(img, dtype=np.float32) / peak
    if alpha is not None:
        alpha = alpha.astype(np.float32) / (65535.0 if alpha.dtype == np.uint16 else 255.0)
    return Picture(np.clip(rgb, 0.0, 1.0), alpha, depth, gray)


def header_size(path: str | Path) -> tuple[int, int] | None:
    """(height, width) from the file's header without decoding the pixels, EXIF rotation applied;
    None when the header cannot tell.  A hint for grouping images by size: read_image decides."""
    try:
        from PIL import Image  # installed with torchvision; only headers are read here
    except ImportError:  # pragma: no cover
        return None
    try:
        with open(path, "rb") as f:
            still = pillow_still(f.read(64))
        if still is not None:
            _open_with_pillow(still, path)  # teaches Pillow HEIC where pillow-heif is installed
        with Image.open(path) as image:
            w, h = image.size
            # EXIF orientations 5-8 turn the picture by 90 degrees; read_image applies them.
            if image.getexif().get(0x0112) in (5, 6, 7, 8):
                w, h = h, w
    except Exception:  # noqa: BLE001 - any unreadable header: no hint
        return None
    return (h, w) if h > 0 and w > 0 else None


def output_format(path: Path) -> str:
    """The OpenCV encoder extension for an output path; InputError for unknown extensions."""
    ext = IMAGE_EXTENSIONS.get(path.suffix.lower())
    if ext is None:
        raise OutputError(path, f"unknown image format {path.suffix!r} (use .png, .jpg, .webp or .tiff)")
    return ext


def encode_image(picture: Picture, ext: str) -> bytes:
    """Encode to the bytes of a file with extension ext (".png", ".jpg", ...)."""
    sixteen = picture.bit_depth == 16 and ext in SIXTEEN_BIT_FORMATS
    peak, dtype = (65535.0, np.uint16) if sixteen else (255.0, np.uint8)
    bgr = picture.rgb[..., ::-1]
    planes = [bgr]
    if picture.alpha is not None and ext != ".jpg":
        planes.append(picture.alpha[..., None])
    img = np.concatenate(planes, axis=2) if len(planes) > 1 else bgr
    img = np.clip(np.rint(img * peak), 0, peak).astype(dtype)
    params = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, 95], ".webp": [cv2.IMWRITE_WEBP_QUALITY, 95]}
    ok, buf = cv2.imencode(ext, img, params.get(ext, []))
    if not ok:
        raise OutputError(ext, "OpenCV could not encode the image")
    return buf.tobytes()


def write_image(path: str | Path, picture: Picture, record: str | None = None) -> None:
    """Write atomically: encode, write a hidden temp file beside the target, then rename. record:
    text kept inside the file where its format has room (with_record)."""
    path = Path(path)
    ext = output_format(path)
    data = encode_image(picture, ext)
    atomic_write_bytes(path, data if record is None else with_record(data, ext, record))


RECORD_KEY = "nstvid"


def with_record(data: bytes, ext: str, record: str) -> bytes:
    """Encoded image bytes with `record` (latin-1 text) inside: a PNG tEXt chunk, a JPEG comment;
    other formats unchanged (read_record then finds nothing)."""
    if ext == ".png":
        return png.with_text(data, RECORD_KEY, record)
    if ext == ".jpg" and data[:2] == b"\xff\xd8":
        body = f"{RECORD_KEY}:{record}".encode("latin-1")
        return data[:2] + b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body + data[2:]
    return data


def read_record(path: Path) -> str | None:
    """The record with_record put in an image file, or None."""
    if path.suffix.lower() == ".png":
        return png.read_text(path, RECORD_KEY)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        try:
            with open(path, "rb") as f:
                head = f.read(65536)
        except OSError:
            return None
        prefix = b"\xff\xd8\xff\xfe"
        if head.startswith(prefix):
            body = head[6:4 + int.from_bytes(head[4:6], "big")]
            key, _, text = body.decode("latin-1").partition(":")
            return text if key == RECORD_KEY else None
    return None


def check_writable_folder(folder: Path) -> None:
    """Fail before hours of work if nothing can be created in folder (root-proof: really try)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".nstvid-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(folder, f"output folder not writable ({e.strerror or e})") from None


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (H, W, C) float32 to size=(height, width): area filter down, cubic up."""
    h, w = size
    if (h, w) == rgb.shape[:2]:
        return rgb
    shrinking = h * w < rgb.shape[0] * rgb.shape[1]
    out = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0) if out.ndim == 3 else np.clip(out, 0.0, 1.0)[..., None]


def fit_long_side(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(h, w) scaled so the long side is long_side, aspect kept, each side at least 1."""
    h, w = size
    scale = long_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


# A picture so thin that a MIN_SIDE short side would make its long side longer than this is refused
# (a 1:512 sliver): its working size would cost what a 2-megapixel photo's does, and no video
# encoder here takes a frame that wide.
MAX_WORKING_SIDE = 8192


def working_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """The (h, w) a picture or a video's frames are optimised at: fit_long_side, but with the short
    side at least MIN_SIDE (a panorama's long side grows past long_side for it), at most
    MAX_WORKING_SIDE long (check_working_size refuses what would need more)."""
    h, w = size
    scale = min(max(long_side / max(h, w), MIN_SIDE / min(h, w)), MAX_WORKING_SIDE / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def check_working_size(path: str | Path, size: tuple[int, int], long_side: int) -> None:
    """InputError naming path when its (h, w) cannot be worked at a short side of MIN_SIDE."""
    h, w = size
    if min(working_size(size, long_side)) < MIN_SIDE:
        raise InputError(path, f"{w}x{h} is too thin to stylise: VGG19 needs a short side of at least {MIN_SIDE} "
                               f"px, which would make the long side over {MAX_WORKING_SIDE} px")


def read_thumbnail(path: str | Path, long_side: int) -> np.ndarray:
    """A small RGB uint8 (h, w, 3) copy of an image file, its long side at most long_side, EXIF
    orientation applied; alpha and 16 bits are dropped (a report's thumbnail needs neither).

    JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (IMREAD_REDUCED_*), so a report on
    a folder of 24-megapixel photos costs a few milliseconds a file, not a full decode. Raises
    InputError as read_image does."""
    path = Path(path)
    try:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from None
    if data.size == 0:
        raise InputError(path, "empty file (0 bytes)")
    if pillow_still(data[:64].tobytes()) is not None:  # HEIC, AVIF: Pillow's whole decode
        picture = decode_image(data, path)
        return shrink_u8(np.rint(picture.rgb * 255).astype(np.uint8), long_side)
    known = header_size(path)
    factor = max(1, min(8, max(known) // max(long_side, 1))) if known else 1
    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}[max(f for f in (1, 2, 4, 8) if f <= factor)]
    if png.is_png(data[:8].tobytes()) and not png.whole_file(path):
        raise InputError(path, "not an image OpenCV can decode (corrupt: PNG truncated)")
    bgr = cv2.imdecode(data, flags)
    if bgr is None or bgr.size == 0:
        raise InputError(path, "not an image OpenCV can decode (corrupt or unsupported format)")
    return shrink_u8(np.ascontiguousarray(bgr[..., ::-1]), long_side)


def shrink_u8(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """(H, W, 3) uint8 scaled down (area filter) so the long side is at most long_side."""
    h, w = rgb.shape[:2]
    if max(h, w) <= long_side:
        return rgb
    return resize_u8(rgb, fit_long_side((h, w), long_side))


def resize_u8(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 at size (h, w), area filtered: how flow.warping_error brings frames to one size."""
    if rgb.shape[:2] == tuple(size):
        return rgb
    return cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def jpeg_bytes(rgb: np.ndarray, quality: int = 75) -> bytes:
    """(H, W, 3) RGB uint8 -> the bytes of a baseline JPEG file (a thumbnail's, quality 0-100)."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OutputError(".jpg", "OpenCV could not encode the thumbnail")
    return buf.tobytes()
