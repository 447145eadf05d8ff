"""What the tests share, each said once: the sample media's paths, the real `nstvid` command (with
a private style cache), tiny clips cut from the samples, and the JSON log read by its stable codes.
Plain names are imported (`from conftest import PAN, clip`); fixtures are found by pytest. The
measures the tests assert on (E_warp, lag, texture, losses) are in tests/metrics.py.

NSTVID_TEST_PRECISION=fp32 (or bf16) forces every run of the suite to that precision, command line
and in-process alike (`make test-fp32`); unset, each test runs as it asks (mostly auto).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# `make test` runs two pytest-xdist workers, one per core of the CI machine. Each worker, and every
# nstvid it starts, then computes on one thread: two processes with a thread per core each made
# torch's threads spin-wait on one another (a 64 px video frame took 5x as long).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_media"
CONTENT = SAMPLES / "chelsea.png"
STYLE = SAMPLES / "starry_night.jpg"
REALSHORT = SAMPLES / "realshort.mp4"  # ../shared/media/video/realshort.mp4, committed: a clone has it
PAN = SAMPLES / "pan.mp4"  # 75 frames, 25 fps, 320x180, AAC tone
ORBIT = SAMPLES / "orbit.mp4"  # 75 frames, 25 fps, 320x180, no audio
CUT = SAMPLES / "cut.mp4"  # real footage: shots of 12 frames, scene cuts between them
# Small and quick: 2 CPU cores run the whole suite.
TINY = ["--size", "64", "--scales", "1", "--iterations", "3"]
PRECISION = os.environ.get("NSTVID_TEST_PRECISION", "")


def nstvid_exe(name: str = "nstvid") -> str:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else shutil.which(name) or name


def command(*args) -> list[str]:
    """The `nstvid` command line for args, the forced precision last (the last flag wins).

    A command that names --size but not --output-size gets --output-size at that size: the tests of
    everything but the output size measure the painting as made (their sizes, flicker and texture
    bounds are at the working size), and small outputs keep the suite quick. tests/test_output_size.py
    names --output-size to test the detail step and the source's size."""
    args = [str(a) for a in args]
    pin = "--size" in args and "--output-size" not in args
    pinned = ["--output-size", args[len(args) - 1 - args[::-1].index("--size") + 1]] if pin else []  # the last wins
    return [nstvid_exe(), *args, *pinned, *(["--precision", PRECISION] if PRECISION else [])]


def nstvid_env(cache_dir: Path, env: dict | None = None) -> dict:
    """The environment of a run: env (default: this process's) with its own style cache."""
    return {**(os.environ if env is None else env), "NSTVID_CACHE_DIR": str(cache_dir)}


def nstvid(env: dict, *args, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run the `nstvid` command (command(*args)) in env; returns CompletedProcess (text)."""
    return subprocess.run(command(*args), capture_output=True, text=True, env=env, timeout=timeout, **kwargs)


def set_flag(args, flag: str, value=None) -> list:
    """A copy of the command line args with the value of `flag` (found by name, never by position:
    a forced --precision may follow) replaced by value, or flag and its value removed when value is
    None; a flag not there is appended with value."""
    args = list(args)
    if flag in args:
        at = args.index(flag)
        if value is None:
            del args[at:at + 2]
        else:
            args[at + 1] = str(value)
    elif value is not None:
        args += [flag, str(value)]
    return args


def count_frames(path: Path) -> int:
    from nstvid.pipeline.media.video import read_frames

    return sum(1 for _ in read_frames(path))


def clip(folder: Path, source: Path, frames: int, name: str, audio: bool = True, every: int = 1) -> Path:
    """folder/name: the first `frames` frames of a sample clip (every `every`-th frame: faster
    motion), re-encoded losslessly enough for the tests, with the source's sound unless audio=False."""
    from nstvid.pipeline.media.video import run_ffmpeg

    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    args = ["-y", "-v", "error", "-i", str(source)]
    args += ["-vf", f"select=not(mod(n\\,{every})),setpts=N/25/TB"] if every > 1 else []
    args += ["-frames:v", str(frames), "-c:v", "libx264", "-crf", "10"]
    args += ["-c:a", "aac", "-shortest"] if audio else ["-an"]
    run_ffmpeg(args + [str(out)], path=source)
    return out


def log(stdout: str) -> list[dict]:
    """The lines of a `--log-format json` run's log, each with its stable `code` (progress.Message)."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def codes(stdout: str) -> list[str]:
    """The codes of a `--log-format json` run's log lines, in order."""
    return [line["code"] for line in log(stdout)]


def said(stdout: str, code: str, **fields) -> list[dict]:
    """The JSON log lines of `code` whose fields include `fields` (paths compared as strings)."""
    want = {k: str(v) if isinstance(v, Path) else v for k, v in fields.items()}
    return [line for line in log(stdout) if line["code"] == code and all(line.get(k) == v for k, v in want.items())]


def settings(**values):
    """Settings for in-process tests, at the forced precision when there is one."""
    from nstvid.pipeline.settings import Settings

    made = Settings(**values)
    return dataclasses.replace(made, precision=PRECISION) if PRECISION else made


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("style-cache")


@pytest.fixture
def run_nstvid(cache_dir):
    """Run the installed `nstvid` command; returns CompletedProcess (text)."""

    def run(*args, env=None, timeout=600, **kwargs):
        return nstvid({**nstvid_env(cache_dir), **(env or {})}, *args, timeout=timeout, **kwargs)

    return run
