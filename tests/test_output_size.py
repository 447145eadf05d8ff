"""Output at the source's size (issue 40): the painting is made at the working size (--size) and
carried to --output-size (the source's own by default) by the detail step (pipeline/deliver.py)."""
from __future__ import annotations

import cv2
import numpy as np

from conftest import CONTENT, REALSHORT, STYLE, TINY, clip
from nstvid.pipeline.media.images import read_image
from nstvid.pipeline.media.video import probe, run_ffmpeg


def _band(rgb: np.ndarray, working: tuple[int, int]) -> np.ndarray:
    """The luminance detail a picture holds beyond the working size (h, w): Y - up(down(Y))."""
    y = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2GRAY)
    h, w = y.shape
    small = cv2.resize(y, (working[1], working[0]), interpolation=cv2.INTER_AREA)
    return y - cv2.resize(small, (w, h), interpolation=cv2.INTER_LANCZOS4)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def test_a_photo_comes_back_at_its_own_size_with_its_own_detail(tmp_path, run_nstvid):
    """chelsea.png (451x300) painted at 64 px comes back at 451x300 by default. The guided step's
    detail beyond the working size is the input's (its band correlates with the input's), where
    Lanczos alone adds none; --output-size sets the long side."""
    source = read_image(CONTENT)
    outs = {}
    for how in ("guided", "resize"):
        outs[how] = tmp_path / f"{how}.png"
        r = run_nstvid(CONTENT, "--style", STYLE, "-o", outs[how], *TINY, "--detail", how,
                       "--output-size", "source")
        assert r.returncode == 0, r.stderr
    guided, plain = read_image(outs["guided"]), read_image(outs["resize"])
    assert guided.size == plain.size == source.size == (300, 451)
    working = (43, 64)  # 64 px long side
    reference = _band(source.rgb, working)
    with_detail, without = _corr(_band(guided.rgb, working), reference), _corr(_band(plain.rgb, working), reference)
    # Measured (AMD EPYC, AVX2, fp32): 0.83 guided, 0.23 Lanczos alone (its ringing). Three
    # iterations leave the painting close to the photo, so the guided step adds nearly all of the
    # band above its grain (deliver.shrink); the bounds hold for any painting that follows the
    # photo's edges.
    assert with_detail > 0.6 and with_detail > without + 0.4, (with_detail, without)

    # The default is the source's size: a dry run without --size or --output-size says so.
    r = run_nstvid(CONTENT, "--style", STYLE, "-o", tmp_path / "default.png", "--dry-run")
    assert r.returncode == 0 and r.stdout.strip().endswith("at 451x300, painted at 512x341"), r.stdout

    sized = tmp_path / "sized.png"
    r = run_nstvid(CONTENT, "--style", STYLE, "-o", sized, *TINY, "--output-size", "200")
    assert r.returncode == 0, r.stderr
    assert read_image(sized).size == (133, 200)
    r = run_nstvid(CONTENT, "--style", STYLE, "-o", sized, *TINY, "--output-size", "huge", "--overwrite")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "--output-size 'huge'" in r.stderr, r.stderr


def test_a_clip_comes_back_at_its_own_size_with_its_sound(tmp_path, run_nstvid):
    """realshort (320x240, with sound) painted at 64 px comes back at 320x240 with its sound."""
    short = clip(tmp_path, REALSHORT, 3, "short.mp4")
    out = tmp_path / "out.mp4"
    r = run_nstvid(short, "--style", STYLE, "-o", out, *TINY, "--frame-iterations", "2", "--output-size", "source")
    assert r.returncode == 0, r.stderr
    info = probe(out)
    assert (info.width, info.height) == (320, 240) and info.has_audio and info.frame_count == 3


def test_anamorphic_input_comes_back_at_its_display_aspect(tmp_path, run_nstvid):
    """A DV-style clip, 720x480 coded with 32:27 pixels (shown at 16:9), comes back with square
    pixels at 16:9: 160x90 at --output-size 160 (it came back 3:2, squeezed, before)."""
    dv = tmp_path / "dv.mp4"
    run_ffmpeg(["-y", "-i", str(REALSHORT), "-frames:v", "2", "-vf", "scale=720:480,setsar=32/27", "-an",
                "-c:v", "libx264", "-crf", "18", str(dv)], path=REALSHORT)
    assert probe(dv).width == 853  # the display width: 720 x 32/27
    out = tmp_path / "dv_out.mp4"
    r = run_nstvid(dv, "--style", STYLE, "-o", out, *TINY, "--frame-iterations", "2", "--output-size", "160")
    assert r.returncode == 0, r.stderr
    info = probe(out)
    assert (info.width, info.height) == (160, 90) and info.sample_aspect == 1
