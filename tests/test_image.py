"""Still images through the real `nstvid` command with the real embedded VGG19 weights."""
from __future__ import annotations

import itertools
import os
import re
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import CONTENT, STYLE, TINY
from metrics import losses_of
from nstvid.pipeline.media.images import read_image


def test_stylises_real_photo(tmp_path, run_nstvid):
    out = tmp_path / "cat.png"
    r = run_nstvid(CONTENT, "--style", STYLE, "-o", out, "--size", "96", "--scales", "1",
                   "--iterations", "40")
    assert r.returncode == 0, r.stderr
    picture = read_image(out)
    assert max(picture.size) == 96 and picture.size == (64, 96)  # aspect kept (300x451 -> 64x96)
    content_c, content_s = losses_of(CONTENT, CONTENT, STYLE, 96)
    out_c, out_s = losses_of(out, CONTENT, STYLE, 96)
    assert content_c == pytest.approx(0.0, abs=1e-6)
    # Clearly stylised: the style loss falls at least 5x below the content image's.
    assert out_s < content_s / 5, (out_s, content_s)
    # Content still recognisable: measured 0.60 with the defaults; 1.0 would be far off.
    assert out_c < 0.9, out_c


def test_default_output_name_and_cache_hit(tmp_path, run_nstvid):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(Path(CONTENT).read_bytes())  # a PNG named .jpg: content decides, not the name
    style = tmp_path / "starry.jpg"
    style.write_bytes(Path(STYLE).read_bytes())
    private = {"NSTVID_CACHE_DIR": str(tmp_path / "cache")}  # "computed" whatever ran before
    first = run_nstvid(photo, "--style", style, *TINY, "--size", "48", env=private)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "photo_starry.png").is_file()
    assert "style targets: computed" in first.stdout
    renamed = tmp_path / "other-name.jpg"  # same bytes, different name: still a hit
    renamed.write_bytes(style.read_bytes())
    second = run_nstvid(photo, "--style", renamed, *TINY, "--size", "48", "-o", tmp_path / "b.png", env=private)
    assert second.returncode == 0, second.stderr
    assert "style targets: cached" in second.stdout
    # Existing output is never overwritten without --overwrite.
    again = run_nstvid(photo, "--style", style, *TINY, "--size", "48")
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_style_blend_and_config_file(tmp_path, run_nstvid):
    wave = tmp_path / "wave.png"
    cv2.imwrite(str(wave), cv2.flip(cv2.imread(str(STYLE)), 1))
    config = tmp_path / "job.toml"
    config.write_text('size = 40\nscales = 1\niterations = 2\n')
    out = tmp_path / "blend.png"
    r = run_nstvid(CONTENT, "--style", STYLE, "--style", wave, "--style-blend", "0.7,0.3",
                   "--config", config, "--size", "56", "-o", out)
    assert r.returncode == 0, r.stderr
    assert max(read_image(out).size) == 56  # the flag beat the config file
    bad = run_nstvid(CONTENT, "--style", STYLE, "--style", wave, "--style-blend", "1", *TINY,
                     "-o", tmp_path / "x.png")
    assert bad.returncode == 2 and "--style-blend" in bad.stderr


def test_grayscale_rgba_and_16bit(tmp_path, run_nstvid):
    bgr = cv2.imread(str(CONTENT))
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    rgba = tmp_path / "rgba.png"
    alpha = np.zeros(bgr.shape[:2], np.uint8)
    alpha[:, bgr.shape[1] // 2:] = 255  # half transparent, half opaque
    cv2.imwrite(str(rgba), np.dstack([bgr, alpha]))
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), bgr.astype(np.uint16) * 257)
    for src in (gray, rgba, deep):
        r = run_nstvid(src, "--style", STYLE, *TINY, "--size", "48")
        assert r.returncode == 0, (src, r.stderr)
    out_rgba = cv2.imread(str(tmp_path / "rgba_starry_night.png"), cv2.IMREAD_UNCHANGED)
    assert out_rgba.shape[2] == 4
    expected = cv2.resize(alpha, (out_rgba.shape[1], out_rgba.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(out_rgba[..., 3].astype(int) - expected).max() <= 1  # alpha carried through
    out_deep = cv2.imread(str(tmp_path / "deep_starry_night.png"), cv2.IMREAD_UNCHANGED)
    assert out_deep.dtype == np.uint16  # 16-bit in, 16-bit out
    out_gray = read_image(tmp_path / "gray_starry_night.png")
    assert out_gray.size == (32, 48)


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert a minimal EXIF APP1 segment holding only the Orientation tag."""
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_exif_orientation_applied(tmp_path, run_nstvid):
    ok, buf = cv2.imencode(".jpg", cv2.imread(str(CONTENT)))  # 451x300, landscape
    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(_with_exif_orientation(buf.tobytes(), 6))  # 6: display rotated 90 degrees
    assert read_image(rotated).size == (451, 300)  # portrait once orientation is applied
    r = run_nstvid(rotated, "--style", STYLE, *TINY, "--size", "48", "-o", tmp_path / "r.webp")
    assert r.returncode == 0, r.stderr
    assert read_image(tmp_path / "r.webp").size == (48, 32)


def _assert_clean_failure(result, out: Path, names: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert names in lines[0], (names, lines[0])
    assert not out.exists()


def test_bad_inputs_one_line_exit_2(tmp_path, run_nstvid):
    out = tmp_path / "out.png"
    missing = tmp_path / "missing.jpg"
    _assert_clean_failure(run_nstvid(missing, "--style", STYLE, *TINY, "-o", out), out, str(missing))
    _assert_clean_failure(run_nstvid(CONTENT, "--style", missing, *TINY, "-o", out), out, str(missing))
    text = tmp_path / "notes.png"
    text.write_text("these are not pixels\n" * 20)
    r = run_nstvid(text, "--style", STYLE, *TINY, "-o", out)
    _assert_clean_failure(r, out, str(text))
    r = run_nstvid(CONTENT, "--style", text, *TINY, "-o", out)
    _assert_clean_failure(r, out, str(text))
    corrupt = tmp_path / "vgg.pth"
    corrupt.write_bytes(os.urandom(4096))
    _assert_clean_failure(run_nstvid(CONTENT, "--style", STYLE, *TINY, "--weights", corrupt, "-o", out),
                          out, str(corrupt))
    # Output equal to the input, spelled differently: refused, input untouched.
    photo = tmp_path / "photo.png"
    photo.write_bytes(Path(CONTENT).read_bytes())
    before = photo.read_bytes()
    r = run_nstvid(photo, "--style", STYLE, *TINY, "-o", tmp_path / "." / "photo.png", "--overwrite")
    assert r.returncode == 2 and "input" in r.stderr and str(photo.name) in r.stderr
    assert photo.read_bytes() == before
    # An output folder nothing can be created in (as root too: /proc refuses new files).
    if os.geteuid() == 0:
        unwritable = Path("/proc/nstvid-test")
    else:
        unwritable = tmp_path / "ro"
        unwritable.mkdir()
        unwritable.chmod(0o555)
    target = unwritable / "out.png"
    _assert_clean_failure(run_nstvid(CONTENT, "--style", STYLE, *TINY, "-o", target), target,
                          str(unwritable))
    _assert_clean_failure(run_nstvid(CONTENT, "--style", STYLE, "--size", "0", "-o", out), out, "--size")


def test_help_lists_every_option_once_in_its_panel(run_nstvid):
    """The help comes from the option table (settings.command_line): every option's flags appear
    once, in the panel the table names, with the field's own default where it has one."""
    from nstvid.pipeline.settings import PANELS, command_line

    r = run_nstvid("--help", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    panels = {m.group(1): m.start() for m in re.finditer(r"╭─ (.+?) ─", r.stdout)}
    assert [p for p in panels if p in PANELS] == list(PANELS), panels
    ends = sorted(panels.values()) + [len(r.stdout)]
    rows_of = {}  # panel: its rows, a wrapped help line joined to its flag's
    for name, at in panels.items():
        rows = rows_of[name] = []
        for line in r.stdout[at:ends[ends.index(at) + 1]].splitlines()[1:-1]:
            text = line.strip("\u2502 ")
            if text.startswith("-") or not rows:
                rows.append(text)
            else:
                rows[-1] += " " + text
    declared = [tok for rows in rows_of.values() for row in rows
                for tok in itertools.takewhile(lambda t: t.startswith("-"), row.split())]
    for name, flag, default in command_line():
        names = flag.flag_names(name)
        assert all(declared.count(each) == 1 for each in names), names
        row = next(row for row in rows_of[flag.panel] if row.split()[0] in names)
        if flag.sets is None and flag.kind is None and default is not None:
            assert f"[default: {default}]" in row, row
    assert declared.count("--preset") == declared.count("--config") == 1
    v = run_nstvid("--version")
    assert v.returncode == 0 and v.stdout.startswith("nstvid ")


def test_preserve_colors_keeps_content_chroma(tmp_path, run_nstvid):
    out = tmp_path / "pc.png"
    r = run_nstvid(CONTENT, "--style", STYLE, "--preserve-colors", "--size", "64", "--scales", "1",
                   "--iterations", "10", "-o", out)
    assert r.returncode == 0, r.stderr
    result = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2YCrCb).astype(float)
    content = cv2.resize(cv2.imread(str(CONTENT)), (result.shape[1], result.shape[0]), interpolation=cv2.INTER_AREA)
    content = cv2.cvtColor(content, cv2.COLOR_BGR2YCrCb).astype(float)
    assert np.abs(result[..., 1:] - content[..., 1:]).mean() < 3.0  # chroma kept (0-255 scale)
    assert np.abs(result[..., 0] - content[..., 0]).mean() > 5.0  # luminance stylised
