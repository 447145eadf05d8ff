"""Issue 41, a new user's first day: phone photos (HEIC, AVIF) and GIFs, nstvid-eval on a part of a
clip, odd media (panoramas, .webm, .gif out), and -o DIR/ for one input; through the real commands."""
from __future__ import annotations

from pathlib import Path

from conftest import CONTENT, STYLE, TINY
from nstvid.pipeline.media.images import read_image


def test_one_input_into_an_existing_folder_is_named_there(tmp_path, run_nstvid):
    """-o DIR/ for one photo writes DIR/NAME_STYLE.png (Real-ESRGAN, demucs, whisper do the same);
    a name ending in / that does not exist yet is a folder too."""
    existing = tmp_path / "out"
    existing.mkdir()
    r = run_nstvid(CONTENT, "--style", STYLE, *TINY, "--size", "32", "-o", existing)
    assert r.returncode == 0, r.stderr
    assert read_image(existing / "chelsea_starry_night.png").size == (21, 32)
    new = tmp_path / "new"
    r = run_nstvid(CONTENT, "--style", STYLE, *TINY, "--size", "32", "-o", f"{new}/")
    assert r.returncode == 0, r.stderr
    assert (new / "chelsea_starry_night.png").is_file()
    again = run_nstvid(CONTENT, "--style", STYLE, *TINY, "--size", "32", "-o", existing)
    assert again.returncode == 2 and "--overwrite" in again.stderr and Path(CONTENT).exists()
