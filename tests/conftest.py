"""Shared fixtures: the real `nstvid` command on real sample media, with a private style cache.

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
# Small and quick: 2 CPU cores run the whole suite.
TINY = ["--size", "64", "--scales", "1", "--iterations", "3"]
PRECISION = os.environ.get("NSTVID_TEST_PRECISION", "")


def nstvid_exe(name: str = "nstvid") -> str:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else shutil.which(name) or name


def command(*args) -> list[str]:
    """The `nstvid` command line for args, the forced precision last (the last flag wins)."""
    return [nstvid_exe(), *map(str, args), *(["--precision", PRECISION] if PRECISION else [])]


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
        full_env = {**os.environ, "NSTVID_CACHE_DIR": str(cache_dir), **(env or {})}
        return subprocess.run(command(*args), capture_output=True, text=True, env=full_env, timeout=timeout,
                              **kwargs)

    return run
