"""Issue 41, a new user's first day: phone photos (HEIC, AVIF) and GIFs, nstvid-eval on a part of a
clip, odd media (panoramas, .webm, .gif out), and -o DIR/ for one input; through the real commands."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pillow_heif  # the test extra installs it: HEIC is tested in CI, never skipped
from PIL import Image

from conftest import CONTENT, STYLE, TINY
from nstvid.pipeline.media.images import read_image


def phone_photos(folder: Path) -> dict[str, Path]:
    """A 96x64 AVIF (Pillow's own encoder) and HEIC (pillow-heif's) of the sample cat, an animated
    GIF of three frames and a text file, in folder."""
    pillow_heif.register_heif_opener()
    folder.mkdir(parents=True, exist_ok=True)
    cat = Image.open(CONTENT).convert("RGB").resize((96, 64))
    files = {name: folder / name for name in ("cat.avif", "cat.heic", "wave.gif", "notes.txt")}
    cat.save(files["cat.avif"])
    cat.save(files["cat.heic"])
    frames = [cat.rotate(angle) for angle in (0, 5, 10)]
    frames[0].save(files["wave.gif"], save_all=True, append_images=frames[1:], duration=100, loop=0)
    files["notes.txt"].write_text("holiday photos\n")
    return files


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


def test_avif_and_heic_photos_are_photos(tmp_path, run_nstvid):
    """An AVIF or HEIC photo is ISO-BMFF as an MP4 is; its ftyp brands make it a photo: a .png out,
    not a one-frame .mp4, on its own and in a folder. The folder's GIF and text file are left out,
    counted in the summary and named in the report."""
    files = phone_photos(tmp_path / "phone")
    r = run_nstvid(files["cat.avif"], "--style", STYLE, *TINY, "--size", "32", "-o", f"{tmp_path}/")
    assert r.returncode == 0, r.stderr
    assert read_image(tmp_path / "cat_starry_night.png").size == (21, 32)
    report = tmp_path / "report.json"
    r = run_nstvid(tmp_path / "phone", "--style", STYLE, *TINY, "--size", "32", "-o", tmp_path / "out",
                   "--report", report, "--log-format", "plain")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "cat.avif.png", "cat.heic.png"]  # both would be cat.png: each keeps its full name
    assert "done=2 skipped=0 failed=0 left_out=2" in r.stdout
    assert "2 left out, neither image nor video (notes.txt, wave.gif)" in r.stdout
    assert json.loads(report.read_text())["left_out"] == ["notes.txt", "wave.gif"]
    page = tmp_path / "report.html"
    r = run_nstvid(tmp_path / "phone", "--style", STYLE, *TINY, "--size", "32", "-o", tmp_path / "out",
                   "--report", page)
    assert r.returncode == 0 and "Left out (2)" in page.read_text() and "<code>wave.gif</code>" in page.read_text()


def test_heic_without_its_decoder_is_one_line_naming_the_install(tmp_path, run_nstvid):
    files = phone_photos(tmp_path)
    hidden = tmp_path / "hide"  # pillow_heif that cannot be imported, as where it is not installed
    hidden.mkdir()
    (hidden / "pillow_heif.py").write_text("raise ImportError('not installed')\n")
    r = run_nstvid(files["cat.heic"], "--style", STYLE, *TINY, env={"PYTHONPATH": str(hidden)})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{files['cat.heic']}: a HEIC photo: decoding it needs pillow-heif (pip install '.[heif]'" in r.stderr


def test_dockerfile_names_the_makefiles_versions_and_copies_files_that_exist():
    """The KubeRay image's recipe, checked without building it (base images cannot be pulled here)."""
    root = Path(__file__).resolve().parent.parent
    makefile, dockerfile = (root / "Makefile").read_text(), (root / "Dockerfile").read_text()
    python = re.search(r"^PYTHON_VERSION := (\S+)", makefile, re.M)[1]
    assert f"ARG PYTHON_VERSION={python}\n" in dockerfile and "FROM python:${PYTHON_VERSION}-slim" in dockerfile
    torch = re.search(r"^TORCH := (.+)$", makefile, re.M)[1]
    assert f"pip install --no-cache-dir {torch}\n" in dockerfile
    copied = [word for line in dockerfile.splitlines() if line.startswith("COPY ") for word in line.split()[1:-1]]
    assert copied and all((root / name).exists() for name in copied), copied
